"""Row formats, one module each, registered by name; each format has one or more variants.

A format is what the rows become (its `kind`: conversation, text, preference, prompt); a variant
is one source shape of it (OpenAI's preference rows, LLaMA-Factory's ShareGPT pairs, TRL's
implicit-prompt pairs...). A variant declares the keys that identify it, how each source field is
mapped, what it deliberately drops and why, and its own `normalize`, which turns one raw row into
a normalized record (see tunewise.data) or raises `FieldError` naming the field. A format module
builds a `RowFormat` and calls `register`; this package imports every module in it, so adding a
format touches nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tunewise.errors import DataError

RecordKind = Literal["conversation", "text", "preference", "prompt"]
Shape = Literal["conversation", "text", "paired", "unpaired", "prompt"]

# Which methods can train on each shape (tunewise.methods names; a test keeps them true).
SHAPE_METHODS: dict[str, tuple[str, ...]] = {
    "conversation": ("full", "lora", "qlora", "dora", "ia3", "prefix", "prompt", "ppo", "grpo"),
    "text": ("full", "lora", "qlora", "dora", "ia3", "prefix", "prompt"),
    "paired": ("dpo", "orpo", "reward", "kto", "ppo", "grpo"),
    "unpaired": ("kto", "ppo", "grpo"),
    "prompt": ("ppo", "grpo"),
}


@dataclass(frozen=True)
class Variant:
    """One source shape of a format.

    signature: keys whose presence identifies it (None-valued keys count as absent); `also`
        lists other key sets that identify it (LLaMA-Factory names the KTO label label or kto_tag).
    fields: source field path -> what it becomes; paths use `a.b` for nested objects and `a[]`
        for each item of a list (`messages[].tool_calls`). Keys a row holds beyond these and
        `dropped` are reported as unused.
    dropped: fields read but deliberately not used, and why.
    shape: what the rows train as (see SHAPE_METHODS).
    """

    name: str
    source: str
    signature: tuple[str, ...]
    normalize: Callable[[dict[str, Any]], dict[str, Any]]
    fields: Mapping[str, str]
    shape: Shape
    dropped: Mapping[str, str] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)
    also: tuple[tuple[str, ...], ...] = ()

    @property
    def signatures(self) -> tuple[tuple[str, ...], ...]:
        return (self.signature, *self.also)

    def held_length(self, row: dict[str, Any]) -> int:
        """Length of the longest of this variant's signatures the row holds in full; 0 for none."""
        return max((len(sig) for sig in self.signatures if holds(row, sig)), default=0)

    def match(self, row: dict[str, Any]) -> tuple[int, int]:
        """(signature held in full, most signature keys present): the variant a row is closest to.
        A broken row missing one key is still read as the variant it nearly is, so its error names that key."""
        partial = max(sum(row.get(key) is not None for key in sig) for sig in self.signatures)
        return self.held_length(row), partial

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "keys": [list(sig) for sig in self.signatures],
                "shape": self.shape,
                "methods": list(SHAPE_METHODS[self.shape]), "fields": dict(self.fields), "dropped": dict(self.dropped),
                "example": self.example}


@dataclass(frozen=True)
class RowFormat:
    """One input format: its name (the `format=` value), kind, variants and detection priority.

    priority breaks detection ties, lower wins. choose_variant, when given, picks the variant of a
    row from more than its top-level keys (chat rows with tool calls are the "tools" variant);
    otherwise the variant whose signature the row holds in full, the longest first, is used.
    """

    name: str
    kind: RecordKind
    priority: int
    description: str
    variants: tuple[Variant, ...]
    choose_variant: Callable[[dict[str, Any]], str] | None = None

    @property
    def signatures(self) -> tuple[tuple[str, ...], ...]:
        return tuple(dict.fromkeys(sig for v in self.variants for sig in v.signatures))

    @property
    def example(self) -> dict[str, Any]:
        return self.variants[0].example

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"format {self.name!r} has no variant {name!r}")

    def variant_of(self, row: dict[str, Any]) -> Variant:
        """The variant a row is read as: its own choice, else the closest by signature (the first on a tie)."""
        if self.choose_variant is not None:
            return self.variant(self.choose_variant(row))
        return max(self.variants, key=lambda v: v.match(row))  # the first of equals wins

    def normalize(self, row: dict[str, Any]) -> dict[str, Any]:
        """The normalized record of one raw row; FieldError naming the field when it is invalid."""
        return self.variant_of(row).normalize(row)


def holds(row: dict[str, Any], keys: Iterable[str]) -> bool:
    """True when every key is in the row with a value other than null (Parquet fills absent columns with null)."""
    return all(row.get(key) is not None for key in keys)


_REGISTRY: dict[str, RowFormat] = {}


def register(fmt: RowFormat) -> RowFormat:
    if fmt.name in _REGISTRY:
        raise ValueError(f"format {fmt.name!r} registered twice")
    _REGISTRY[fmt.name] = fmt
    return fmt


def get_format(name: str) -> RowFormat:
    """The registered format called `name`; DataError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(f"format: unknown format {name!r}; known formats: {', '.join(format_names())}") from None


def format_names() -> list[str]:
    return [f.name for f in all_formats()]


def all_formats() -> list[RowFormat]:
    return sorted(_REGISTRY.values(), key=lambda f: f.priority)


DETECT_SAMPLE_ROWS = 20


def detect_format(rows: Iterable[Any], *, sample: int = DETECT_SAMPLE_ROWS) -> str:
    """Name the format of `rows` from the keys of the first `sample` objects.

    `rows` holds dicts, or `(line_no, dict | RowError)` pairs as `load_rows` yields them (errors
    are skipped). Each row counts for the format of the longest key signature it holds in full
    (prompt/completion/label is preference, not completion; messages/label is KTO preference, not
    chat; prompt/chosen is no pair, so prompt); the format most rows count for wins, ties going to
    the longer signature, then to priority. So a few broken rows cannot change the format of a
    file, and are reported as invalid rows of it.
    Raises DataError naming the keys found when no format matches.
    """
    objects: list[dict] = []
    for item in rows:
        if isinstance(item, tuple) and len(item) == 2 and (item[0] is None or isinstance(item[0], int)):
            item = item[1]
        if isinstance(item, dict):
            objects.append(item)
            if len(objects) >= sample:
                break
    votes: dict[str, tuple[int, int, int]] = {}  # format -> (rows, longest signature, -priority)
    for row in objects:
        held = [(len(sig), -fmt.priority, fmt.name) for fmt in all_formats() for sig in fmt.signatures
                if holds(row, sig)]
        if held:
            length, rank, name = max(held)
            count, longest, _ = votes.get(name, (0, 0, rank))
            votes[name] = (count + 1, max(longest, length), rank)
    best_name = max(votes, key=votes.__getitem__) if votes else None
    if best_name is None:
        seen = sorted({key for row in objects for key in row})
        expected = ", ".join(f"{f.name} ({', '.join(f.signatures[0])})" for f in all_formats())
        found = f"keys {', '.join(seen[:12])}" if seen else "no rows that are JSON objects"
        raise DataError(
            f"cannot detect the data format from {found}; expected one of: {expected}",
            hint="rename the fields, or name the format (data.format / --format); `tunewise data formats` lists them",
        )
    return best_name


def describe_formats() -> list[dict[str, Any]]:
    """Every format with its variants, as `tunewise data formats --json` prints them."""
    return [{"name": f.name, "kind": f.kind, "description": f.description,
             "variants": [v.to_dict() for v in f.variants]} for f in all_formats()]


for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
