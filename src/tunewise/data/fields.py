"""Source fields a row holds that its format variant does not read.

Every such field is reported (path, how many rows, the first line). A few fields change what a row
means (a KTO label, a training weight, a preference answer, tools, media): a row that holds one
its variant does not read is refused with the reason, since training on it anyway would misread it.
Empty values (null, "", [], {}) count as absent: Parquet and CSV fill missing columns with them.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant
from tunewise.data.problems import FieldError

_PREFERENCE = "is a preference answer"
_LABEL = "marks the answer desirable or undesirable (a KTO label)"
_WEIGHT = "says how much a turn is trained"
_MEDIA = "refers to media (images, audio, video), which tunewise does not train on"
MEANINGFUL: dict[str, str] = {
    "label": _LABEL, "kto_tag": _LABEL,
    "weight": _WEIGHT, "loss_weight": _WEIGHT,
    "chosen": _PREFERENCE, "rejected": _PREFERENCE, "chosen_messages": _PREFERENCE, "rejected_messages": _PREFERENCE,
    "preferred_output": _PREFERENCE, "non_preferred_output": _PREFERENCE,
    "tools": "declares tools the answers may call", "functions": "declares tools the answers may call",
    "tool_calls": "holds tool calls", "function_call": "holds a tool call",
    "system": "holds a system prompt", "history": "holds earlier turns of the conversation",
    "images": _MEDIA, "image": _MEDIA, "videos": _MEDIA, "audios": _MEDIA,
}
# Where a refused field belongs, when another format reads it.
_READ_BY = {
    "label": "labelled rows are KTO data, which format preference reads (messages + label, prompt + completion + label)",
    "kto_tag": "labelled rows are KTO data, which format preference reads",
    "chosen": "pairs are read by format preference", "rejected": "pairs are read by format preference",
    "tools": "formats chat, sharegpt, completion and preference read tools",
}
_BOOL_TEXT = ("true", "false")

_TREES: dict[int, dict[str, Any]] = {}


def scan_fields(row: dict[str, Any], variant: Variant) -> tuple[set[str], dict[str, Any]]:
    """(declared fields the row holds, unused fields: path -> first value) for one row.

    Unused fields are the non-empty ones `variant` neither reads nor drops. Paths look like `id`,
    `messages[].refusal`, `input.metadata`; nested objects are only looked into where the variant
    declares fields inside them.
    """
    tree = _TREES.get(id(variant))
    if tree is None:
        tree = _TREES[id(variant)] = _key_tree([*variant.fields, *variant.dropped])
    used: set[str] = set()
    unused: dict[str, Any] = {}
    _walk(row, tree, "", used, unused)
    return used, unused


def refuse_meaningful(unused: dict[str, Any], fmt: RowFormat, variant: Variant) -> None:
    """FieldError for the first unused field whose meaning the row would lose."""
    for path, value in unused.items():
        name = path.rsplit(".", 1)[-1].removesuffix("[]")
        why = MEANINGFUL.get(name)
        if why is None or (name in ("label", "kto_tag") and not _looks_boolean(value)):
            continue
        where = _READ_BY.get(name)
        reason = (f"{why}, but {fmt.name} ({variant.name}) rows do not read {name!r}; ignoring it would change "
                  "what the row means" + (f"; {where}" if where else ""))
        raise FieldError(path, reason)


def _key_tree(paths: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


def _walk(value: dict[str, Any], tree: dict[str, Any], prefix: str, used: set[str], unused: dict[str, Any]) -> None:
    for key, item in value.items():
        if item is None or ((type(item) is str or type(item) is list or type(item) is dict) and not item):
            continue  # empty: absent (inlined, as this runs for every key of every row and message)
        listed, plain = tree.get(key + "[]"), tree.get(key)
        if listed is None and plain is None:
            unused.setdefault(f"{prefix}{key}", item)
            continue
        used.add(f"{prefix}{key}")
        if listed and isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    _walk(element, listed, f"{prefix}{key}[].", used, unused)
        elif plain and isinstance(item, dict):
            _walk(item, plain, f"{prefix}{key}.", used, unused)


def _looks_boolean(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _BOOL_TEXT)
