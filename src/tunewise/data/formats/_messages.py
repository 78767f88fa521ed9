"""Checks shared by the formats that carry message lists (chat, sharegpt, preference)."""

from __future__ import annotations

from typing import Any

from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name

ROLES = ("system", "user", "assistant")


def require(row: dict[str, Any], key: str) -> Any:
    if key not in row:
        raise FieldError(key, f"missing key {key!r}")
    return row[key]


def text_field(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """A string value; list-of-parts content ([{"type": "text", "text": ...}]) is joined."""
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        parts = [p.get("text") for p in value]
        if all(isinstance(p, str) for p in parts):
            value = "".join(parts)
    if not isinstance(value, str):
        parts = isinstance(value, list) and value and isinstance(value[0], dict)
        hint = " (only text content parts are supported)" if parts else ""
        raise FieldError(field, f"expected a string, got a JSON {json_type_name(value)}{hint}")
    if not allow_empty and not value.strip():
        raise FieldError(field, "is empty")
    return value


def weight_field(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        shown = value if isinstance(value, (int, float, str)) else json_type_name(value)
        raise FieldError(field, f"weight must be 0 or 1, got {shown!r}")
    return int(value)


def message_list(value: Any, field: str, *, role_key: str = "role", content_key: str = "content",
                 role_names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Normalize a list of messages to [{"role", "content", "weight"?}], checking each entry.

    role_names maps source role names to ours (sharegpt's human -> user); None means ROLES as is.
    Empty user or assistant content is an error (an empty answer teaches the model to say nothing).
    """
    if isinstance(value, str):
        raise FieldError(field, "expected a list of messages, got a string (CSV cells hold text; use JSONL for messages)")
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of messages, got a JSON {json_type_name(value)}")
    if not value:
        raise FieldError(field, "has no messages")
    names = role_names or {r: r for r in ROLES}
    out = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, f"expected an object, got a JSON {json_type_name(item)}")
        raw_role = require_in(item, role_key, where)
        if not isinstance(raw_role, str) or raw_role not in names:
            known = ", ".join(names)
            raise FieldError(f"{where}.{role_key}", f"unknown role {raw_role!r}; expected one of {known}")
        role = names[raw_role]
        content = text_field(require_in(item, content_key, where), f"{where}.{content_key}", allow_empty=role == "system")
        message: dict[str, Any] = {"role": role, "content": content}
        if "weight" in item and item["weight"] is not None:
            if role != "assistant":
                raise FieldError(f"{where}.weight", "weight is only allowed on assistant messages")
            message["weight"] = weight_field(item["weight"], f"{where}.weight")
        out.append(message)
    return out


def require_in(item: dict[str, Any], key: str, where: str) -> Any:
    if key not in item:
        raise FieldError(f"{where}.{key}", f"missing key {key!r}")
    return item[key]


def check_turn_order(messages: list[dict[str, Any]], field: str, *, last: str = "assistant") -> None:
    """Optional leading system, then user/assistant alternating from user, ending with `last`."""
    start = 1 if messages and messages[0]["role"] == "system" else 0
    expected = "user"
    for i in range(start, len(messages)):
        role = messages[i]["role"]
        if role != expected:
            where = "first turn after the system message" if i == start and start else (
                "first turn" if i == start else f"turn after {messages[i - 1]['role']!r}")
            raise FieldError(f"{field}[{i}].role", f"expected {expected!r} as the {where}, got {role!r}")
        expected = "assistant" if role == "user" else "user"
    if len(messages) == start:
        raise FieldError(field, "has only a system message")
    if messages[-1]["role"] != last:
        raise FieldError(f"{field}[{len(messages) - 1}].role", f"the conversation must end with a turn by {last!r}, got {messages[-1]['role']!r}")


def check_something_to_learn(messages: list[dict[str, Any]], field: str) -> None:
    if all(m.get("weight", 1) == 0 for m in messages if m["role"] == "assistant"):
        raise FieldError(field, "every assistant turn has weight 0; nothing to learn from this row")
