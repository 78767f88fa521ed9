"""Preference data for DPO-style (paired) and KTO-style (unpaired) alignment.

Paired:   {"prompt", "chosen", "rejected"} -> {"prompt": [messages], "chosen": [assistant], "rejected": [assistant]}
Unpaired: {"prompt", "completion", "label": bool} -> {"prompt": [messages], "completion": [assistant], "label": bool}

The prompt is a string (one user turn) or a message list ending with a user turn; answers are a
string or a list of assistant messages. These records are tokenized by the alignment trainer, so
this module only validates and normalizes. One file holds one kind; `record_kind` tells them apart.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import check_turn_order, message_list, require, text_field
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name

_BOOL_STRINGS = {"true": True, "false": False}  # CSV cells carry booleans as text


def record_kind(record: dict[str, Any]) -> str:
    """"paired" (chosen/rejected) or "unpaired" (completion/label)."""
    return "paired" if "chosen" in record else "unpaired"


def prompt_messages(value: Any) -> list[dict[str, Any]]:
    """A prompt as messages: a string is one user turn; a message list must end with a user turn."""
    if isinstance(value, str):
        return [{"role": "user", "content": text_field(value, "prompt")}]
    messages = message_list(value, "prompt")
    check_turn_order(messages, "prompt", last="user")
    return messages


def _answer(value: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": text_field(value, field)}]
    messages = message_list(value, field)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            raise FieldError(f"{field}[{i}].role", f"answers hold assistant messages only, got {message['role']!r}")
    return messages


def _label(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in _BOOL_STRINGS:
        return _BOOL_STRINGS[value.strip().lower()]
    if not isinstance(value, bool):
        raise FieldError("label", f"expected true or false, got a JSON {json_type_name(value)}")
    return value


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    prompt = prompt_messages(require(row, "prompt"))
    if "chosen" not in row and "rejected" not in row and "label" in row:
        completion = _answer(require(row, "completion"), "completion")
        return {"prompt": prompt, "completion": completion, "label": _label(row["label"])}
    chosen = _answer(require(row, "chosen"), "chosen")
    rejected = _answer(require(row, "rejected"), "rejected")
    if chosen == rejected:
        raise FieldError("rejected", "is identical to chosen; the pair teaches nothing")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


FORMAT = register(RowFormat(
    name="preference",
    signatures=(("prompt", "chosen", "rejected"), ("prompt", "completion", "label")),
    normalize=normalize,
    kind="preference",
    priority=2,
    description="prompt/chosen/rejected (paired) or prompt/completion/label (unpaired, KTO)",
    example={"prompt": "Say hi", "chosen": "Hi there!", "rejected": "No."},
))
