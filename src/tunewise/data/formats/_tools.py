"""Tool schemas and tool calls, read from the shapes OpenAI, TRL and LLaMA-Factory write them in.

Normalized shapes (the ones transformers' chat templates take):
    tool       {"type": "function", "function": {"name": str, "description"?: str, "parameters"?: object}}
    tool call  {"type": "function", "function": {"name": str, "arguments": object}, "id"?: str}

OpenAI writes a call's arguments as a JSON string; templates expect an object, so the string is
parsed here (and must hold an object). LLaMA-Factory writes tools as a JSON string and each call
as a JSON `{"name", "arguments"}` (or a list of them) in the message text.
"""

from __future__ import annotations

import json
from typing import Any

from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name


def tool_list(value: Any, field: str) -> list[dict[str, Any]]:
    """Tool schemas from OpenAI `tools`, legacy `functions`, or a JSON string of either (LLaMA-Factory)."""
    if isinstance(value, str):
        value = _parse_json(value, field) if value.strip() else []
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of tools, got a JSON {json_type_name(value)}")
    tools, names = [], set()
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, f"expected an object, got a JSON {json_type_name(item)}")
        spec, where_fn = _function_spec(item, where)
        name = _name(spec.get("name"), f"{where_fn}.name")
        if name in names:
            raise FieldError(f"{where_fn}.name", f"function {name!r} is declared twice")
        names.add(name)
        function: dict[str, Any] = {"name": name}
        for key, kind in (("description", str), ("parameters", dict)):
            if spec.get(key) is not None:
                if not isinstance(spec[key], kind):
                    expected = "a string" if kind is str else "an object (a JSON schema)"
                    raise FieldError(f"{where_fn}.{key}", f"expected {expected}, got a JSON {json_type_name(spec[key])}")
                function[key] = spec[key]
        tools.append({"type": "function", "function": function})
    return tools


def tool_calls(value: Any, field: str) -> list[dict[str, Any]]:
    """OpenAI `tool_calls`: [{"id", "type": "function", "function": {"name", "arguments"}}]."""
    if not isinstance(value, list) or not value:
        shown = "an empty list" if value == [] else f"a JSON {json_type_name(value)}"
        raise FieldError(field, f"expected a non-empty list of tool calls, got {shown}")
    calls = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, f"expected an object, got a JSON {json_type_name(item)}")
        spec, where_fn = _function_spec(item, where)
        call = _call(spec, where_fn)
        if item.get("id") is not None:
            if not isinstance(item["id"], str):
                raise FieldError(f"{where}.id", f"expected a string, got a JSON {json_type_name(item['id'])}")
            call["id"] = item["id"]
        calls.append(call)
    return calls


def function_call(value: Any, field: str) -> list[dict[str, Any]]:
    """Legacy OpenAI `function_call`: {"name", "arguments"} -> one tool call."""
    if not isinstance(value, dict):
        raise FieldError(field, f"expected an object, got a JSON {json_type_name(value)}")
    return [_call(value, field)]


def calls_from_json(text: Any, field: str) -> list[dict[str, Any]]:
    """LLaMA-Factory's call text: a JSON {"name", "arguments"} or a list of them."""
    if not isinstance(text, str):
        raise FieldError(field, f"expected a JSON string holding the call, got a JSON {json_type_name(text)}")
    value = _parse_json(text, field)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise FieldError(field, "holds no tool call")
    calls = []
    for i, item in enumerate(items):
        where = field if not isinstance(value, list) else f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, "a tool call must be a JSON object with name and arguments, "
                             f"got a JSON {json_type_name(item)}")
        calls.append(_call(item, where))
    return calls


def call_names(messages: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(message index, call index, function name) of every tool call in a conversation."""
    return [(i, j, call["function"]["name"]) for i, m in enumerate(messages)
            for j, call in enumerate(m.get("tool_calls") or [])]


def check_calls_declared(messages: list[dict[str, Any]], tools: list[dict[str, Any]], field: str) -> None:
    """A call to a function the row does not declare teaches the model to invent tools."""
    if not tools:
        return
    declared = {tool["function"]["name"] for tool in tools}
    for i, j, name in call_names(messages):
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise FieldError(f"{field}[{i}].tool_calls[{j}]", f"calls {name!r}, which is not among the tools ({known})")


def _function_spec(item: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """The function object of an OpenAI {"type": "function", "function": {...}} wrapper, or the item itself."""
    if "function" not in item:
        return item, where
    kind = item.get("type", "function")
    if kind != "function":
        raise FieldError(f"{where}.type", f"only function tools are supported, got {kind!r}")
    spec = item["function"]
    if not isinstance(spec, dict):
        raise FieldError(f"{where}.function", f"expected an object, got a JSON {json_type_name(spec)}")
    return spec, f"{where}.function"


def _call(spec: dict[str, Any], where: str) -> dict[str, Any]:
    name = _name(spec.get("name"), f"{where}.name")
    if "arguments" not in spec:
        raise FieldError(f"{where}.arguments", "missing key 'arguments'")
    return {"type": "function", "function": {"name": name, "arguments": _arguments(spec["arguments"], f"{where}.arguments")}}


def _arguments(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = _parse_json(value, field) if value.strip() else {}
    if not isinstance(value, dict):
        raise FieldError(field, f"arguments must be a JSON object, got a JSON {json_type_name(value)}")
    return value


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "missing" if value is None else f"a JSON {json_type_name(value)}" if not isinstance(value, str) else "empty"
        raise FieldError(field, f"a function name is required, got {shown}")
    return value


def _parse_json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FieldError(field, f"not valid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise FieldError(field, "JSON nested too deeply") from None


def row_tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools a row declares under `tools` (OpenAI, TRL, LLaMA-Factory) or legacy `functions`."""
    given = [key for key in ("tools", "functions") if row.get(key) not in (None, "", [])]
    if len(given) == 2:
        raise FieldError("functions", "the row has tools and the legacy functions; give one of them")
    return tool_list(row[given[0]], given[0]) if given else []


def is_tool_message(message: dict[str, Any]) -> bool:
    """Whether a raw OpenAI message makes tool calls or is a tool result (before it is validated)."""
    return (message.get("tool_calls") is not None or message.get("function_call") is not None
            or message.get("role") in ("tool", "function"))
