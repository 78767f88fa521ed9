"""Row formats, one module each, registered by name.

A format module builds a `RowFormat` and calls `register`; this package imports every module in
it, so adding a format touches nothing else. A format's `normalize` turns one raw row into a
normalized record (see tunewise.data.records) or raises `FieldError` naming the field.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tunewise.errors import DataError

RecordKind = Literal["conversation", "text", "preference", "prompt"]


@dataclass(frozen=True)
class RowFormat:
    """One input format.

    name: the `format=` value. signatures: key sets whose presence identifies the format (any one
    of them). priority: breaks detection ties, lower wins. kind: the normalized record type.
    """

    name: str
    signatures: tuple[tuple[str, ...], ...]
    normalize: Callable[[dict[str, Any]], dict[str, Any]]
    kind: RecordKind
    priority: int
    description: str
    example: dict[str, Any] = field(default_factory=dict)


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
    return [f.name for f in sorted(_REGISTRY.values(), key=lambda f: f.priority)]


def all_formats() -> list[RowFormat]:
    return sorted(_REGISTRY.values(), key=lambda f: f.priority)


DETECT_SAMPLE_ROWS = 20


def detect_format(rows: Iterable[Any], *, sample: int = DETECT_SAMPLE_ROWS) -> str:
    """Name the format of `rows` from the keys of the first `sample` objects.

    `rows` holds dicts, or `(line_no, dict | RowError)` pairs as `load_rows` yields them (errors
    are skipped). Each row counts for the format of the longest key signature it holds in full
    (prompt/completion/label is preference, not completion; prompt/chosen is no pair, so prompt);
    the format most rows count for wins, ties going to the longer signature, then to priority.
    So a few broken rows cannot change the format of a file, and are reported as invalid rows of it.
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
                if all(key in row for key in sig)]
        if held:
            length, rank, name = max(held)
            rows, longest, _ = votes.get(name, (0, 0, rank))
            votes[name] = (rows + 1, max(longest, length), rank)
    best_name = max(votes, key=votes.__getitem__) if votes else None
    if best_name is None:
        seen = sorted({key for row in objects for key in row})
        expected = ", ".join(f"{f.name} ({', '.join(f.signatures[0])})" for f in all_formats())
        found = f"keys {', '.join(seen[:12])}" if seen else "no rows that are JSON objects"
        raise DataError(
            f"cannot detect the data format from {found}; expected one of: {expected}",
            hint="rename the fields, or name the format (data.format / --format)",
        )
    return best_name


for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
