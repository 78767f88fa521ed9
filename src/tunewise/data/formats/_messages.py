"""Message lists as OpenAI, ShareGPT and LLaMA-Factory write them, read into one normalized shape.

A normalized message is {"role": "system"|"user"|"assistant"|"tool", "content": str} plus, where
they apply, "weight" (0|1, assistant only), "tool_calls" (assistant only, see _tools), and
"tool_call_id" / "name" (tool results). A `Dialect` says how one source spells roles, content
and weights; the checks after reading are the same for every source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tunewise.data.formats._tools import calls_from_json, function_call, tool_calls
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name

ROLES = ("system", "user", "assistant")
_TEXT_PART_KEYS = ("text", "value")  # OpenAI writes {"type": "text", "text"}, LLaMA-Factory {"type": "text", "value"}


@dataclass(frozen=True)
class Dialect:
    """How one source writes a message. roles maps its role names to ours; "call" marks a role
    whose text is a JSON tool call (LLaMA-Factory's function_call)."""

    roles: Mapping[str, str]
    role_key: str = "role"
    content_key: str = "content"
    weight_key: str = "weight"

    def shown(self, role: str) -> str:
        """Our role name as this source writes it, for messages (ShareGPT's tool result is an observation)."""
        return next((theirs for theirs, ours in self.roles.items() if ours == role), role)


OPENAI = Dialect({"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                  "tool": "tool", "function": "tool"})
SHAREGPT = Dialect({"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                    "function_call": "call", "observation": "tool"}, role_key="from", content_key="value")
LLAMA_FACTORY = Dialect({"system": "system", "user": "user", "assistant": "assistant", "tool": "tool"},
                        weight_key="loss_weight")


def require(row: dict[str, Any], key: str) -> Any:
    return require_in(row, key, "")


def require_in(item: dict[str, Any], key: str, where: str) -> Any:
    """item[key]; FieldError at `where.key` when it is absent or null."""
    field = f"{where}.{key}" if where else key
    if key not in item:
        raise FieldError(field, f"missing key {key!r}")
    if item[key] is None:
        raise FieldError(field, "is null")
    return item[key]


def text_field(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """A string value; a list of text parts ([{"type": "text", "text" | "value": ...}]) is joined."""
    if _is_parts(value):
        value = _join_text_parts(value, field)
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got a JSON {json_type_name(value)}")
    if not allow_empty and not value.strip():
        raise FieldError(field, "is empty")
    return value


def weight_field(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        shown = value if isinstance(value, (int, float, str)) else json_type_name(value)
        raise FieldError(field, f"weight must be 0 or 1, got {shown!r} (an answer is trained fully or not at all)")
    return int(value)


def message_list(value: Any, field: str, dialect: Dialect = OPENAI) -> list[dict[str, Any]]:
    """Normalize a list of messages written in `dialect`, checking each entry (not their order).

    Empty user or assistant text is an error (an empty answer teaches the model to say nothing),
    except an assistant turn that makes tool calls, whose text may be absent.
    """
    if isinstance(value, str):
        raise FieldError(field, "expected a list of messages, got a string (CSV cells hold text; use JSONL for messages)")
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of messages, got a JSON {json_type_name(value)}")
    if not value:
        raise FieldError(field, "has no messages")
    out = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, f"expected an object, got a JSON {json_type_name(item)}")
        out.append(read_message(item, where, dialect))
    return out


def read_message(item: dict[str, Any], where: str, dialect: Dialect = OPENAI) -> dict[str, Any]:
    """One message object written in `dialect`, normalized; `where` names it in errors."""
    raw_role = require_in(item, dialect.role_key, where)
    if not isinstance(raw_role, str) or raw_role not in dialect.roles:
        known = ", ".join(dialect.roles)
        raise FieldError(f"{where}.{dialect.role_key}", f"unknown role {raw_role!r}; expected one of {known}")
    role = dialect.roles[raw_role]
    content_where = f"{where}.{dialect.content_key}"
    if role == "call":
        message = {"role": "assistant", "content": "",
                   "tool_calls": calls_from_json(require_in(item, dialect.content_key, where), content_where)}
    else:
        calls = _assistant_calls(item, where) if role == "assistant" else []
        raw = item.get(dialect.content_key) if calls else require_in(item, dialect.content_key, where)
        content, part_calls = _content(raw, content_where, role)
        if calls and part_calls:
            raise FieldError(content_where, "holds tool_call parts and the message also has tool_calls; give them once")
        calls = calls or part_calls
        if not content.strip() and not (role in ("system", "tool") or calls):
            raise FieldError(content_where, "is empty")
        message = {"role": role, "content": content}
        if calls:
            message["tool_calls"] = calls
        if role == "tool":
            message.update(_tool_result_ids(item, where, named=raw_role == "function"))
    weight = item.get(dialect.weight_key)
    if weight is not None:
        weight_where = f"{where}.{dialect.weight_key}"
        if message["role"] == "assistant":
            message["weight"] = weight_field(weight, weight_where)
        elif dialect.weight_key == "weight" or weight_field(weight, weight_where) != 0:
            # LLaMA-Factory writes loss_weight 0 on every prompt turn; loss on them would train the model to write prompts.
            raise FieldError(weight_where, f"{dialect.weight_key} is only allowed on assistant messages "
                             "(tunewise trains on assistant turns only)")
    return message


def _assistant_calls(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    calls = tool_calls(item["tool_calls"], f"{where}.tool_calls") if item.get("tool_calls") is not None else []
    if item.get("function_call") is not None:
        if calls:
            raise FieldError(f"{where}.function_call", "a message has tool_calls or the legacy function_call, not both")
        calls = function_call(item["function_call"], f"{where}.function_call")
    return calls


def _content(raw: Any, where: str, role: str) -> tuple[str, list[dict[str, Any]]]:
    """The text of a message, and the tool calls written as LLaMA-Factory tool_call parts."""
    if raw is None:
        return "", []
    if isinstance(raw, str):
        return raw, []
    if not _is_parts(raw):
        raise FieldError(where, f"expected a string, got a JSON {json_type_name(raw)}")
    text_parts, calls = [], []
    for j, part in enumerate(raw):
        if isinstance(part, dict) and part.get("type") == "tool_call" and role == "assistant":
            calls.extend(calls_from_json(part.get("value"), f"{where}[{j}].value"))
        else:
            text_parts.append(part)
    return (_join_text_parts(text_parts, where) if text_parts else ""), calls


def _is_parts(value: Any) -> bool:
    """A list of content part objects ([{"type": ...}, ...])."""
    return isinstance(value, list) and bool(value) and all(isinstance(p, dict) for p in value)


def _join_text_parts(parts: list[dict[str, Any]], field: str) -> str:
    texts = []
    for j, part in enumerate(parts):
        kind = part.get("type")
        if kind != "text":
            raise FieldError(f"{field}[{j}].type", f"content part type {kind!r} is not supported "
                             "(tunewise trains on text parts and tool calls)")
        text = next((part[k] for k in _TEXT_PART_KEYS if k in part), None)
        if not isinstance(text, str):
            raise FieldError(f"{field}[{j}]", "a text part needs a string under 'text' (OpenAI) or 'value' (LLaMA-Factory)")
        texts.append(text)
    return "".join(texts)


def _tool_result_ids(item: dict[str, Any], where: str, *, named: bool) -> dict[str, str]:
    out = {}
    for key in ("tool_call_id", "name"):
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise FieldError(f"{where}.{key}", f"expected a string, got a JSON {json_type_name(value)}")
        out[key] = value
    if named and "name" not in out:
        raise FieldError(f"{where}.name", "a legacy function message needs the name of the function it answers")
    return out


def check_turn_order(messages: list[dict[str, Any]], field: str, *, last: str = "assistant",
                     dialect: Dialect | None = None) -> None:
    """Optional leading system, then user/assistant alternating from user, ending with `last`.

    Tool results follow an assistant turn that makes tool calls (one result per call at most, each
    naming a call of that turn when ids are given), and the assistant speaks again after them. A
    conversation may end with a tool-call turn; a prompt (last="user") may end with tool results.
    """
    dialect = dialect or OPENAI
    start = 1 if messages and messages[0]["role"] == "system" else 0
    if len(messages) == start:
        raise FieldError(field, "has only a system message")
    pending: list[dict[str, Any]] = []  # calls of the last assistant turn not yet answered
    expected = ("user",)
    for i in range(start, len(messages)):
        message = messages[i]
        role = message["role"]
        if role not in expected:
            raise FieldError(f"{field}[{i}].{dialect.role_key}", _order_reason(messages, i, start, expected, dialect))
        if role == "tool":
            _match_result(message, pending, f"{field}[{i}]", dialect)
        pending = list(message.get("tool_calls") or []) if role == "assistant" else pending
        expected = _next_roles(message)
    end = messages[-1]["role"]
    allowed = ("user", "tool") if last == "user" else (last,)
    if end not in allowed:
        raise FieldError(f"{field}[{len(messages) - 1}].{dialect.role_key}", "the conversation must end with a turn "
                         f"by {dialect.shown(last)!r}, got {dialect.shown(end)!r}")


def _next_roles(message: dict[str, Any]) -> tuple[str, ...]:
    if message["role"] == "user":
        return ("assistant",)
    if message["role"] == "assistant":
        return ("tool",) if message.get("tool_calls") else ("user",)
    return ("tool", "assistant")  # after a tool result: more results, or the assistant goes on


def _order_reason(messages: list[dict[str, Any]], i: int, start: int, expected: tuple[str, ...], dialect: Dialect) -> str:
    wanted = " or ".join(repr(dialect.shown(r)) for r in expected)
    previous = messages[i - 1] if i > 0 else None
    if i == start:
        where = "first turn after the system message" if start else "first turn"
    elif previous is not None and previous.get("tool_calls"):
        where = "turn after an assistant tool call (its results)"
    else:
        where = f"turn after {dialect.shown(previous['role'])!r}"
    return f"expected {wanted} as the {where}, got {dialect.shown(messages[i]['role'])!r}"


def _match_result(message: dict[str, Any], pending: list[dict[str, Any]], where: str, dialect: Dialect) -> None:
    if not pending:
        raise FieldError(f"{where}.{dialect.role_key}", "more tool results than the assistant turn before them made calls")
    call_id = message.get("tool_call_id")
    ids = [call.get("id") for call in pending]
    if call_id is not None and any(ids):
        if call_id not in ids:
            raise FieldError(f"{where}.tool_call_id", f"{call_id!r} answers no call of the assistant turn before it "
                             f"(its calls: {', '.join(repr(i) for i in ids if i)})")
        pending.pop(ids.index(call_id))
    else:
        pending.pop(0)


def check_something_to_learn(messages: list[dict[str, Any]], field: str) -> None:
    if all(m.get("weight", 1) == 0 for m in messages if m["role"] == "assistant"):
        raise FieldError(field, "every assistant turn has weight 0; nothing to learn from this row")


def system_key(row: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a top-level `system` string (ShareGPT, LLaMA-Factory) as their system turn.

    A row with both a system key and a different system message is refused: one of them would be
    ignored, and which one was meant cannot be told.
    """
    system = row.get("system")
    if system is None:
        return messages
    system = text_field(system, "system", allow_empty=True)
    if messages and messages[0]["role"] == "system":
        if messages[0]["content"].strip() != system.strip() and system.strip():
            raise FieldError("system", "the row has a system key and a different system message; keep one")
        return messages
    return ([{"role": "system", "content": system}] if system.strip() else []) + messages
