"""What a chat template is given: tools through the template when it renders them, else our text form.

Normalized messages may carry tool calls and tool results, and a record may carry tool schemas.
When the tokenizer's chat template renders all three (checked once per template by rendering a
probe conversation with `tools=`), they are passed as they are: the schemas as `tools=` to
`apply_chat_template`, the calls as `tool_calls` on assistant messages. Otherwise tunewise renders
them as text, in the tag convention many tool-calling models are trained on:

  - the schemas go at the end of the system turn (a system turn is added when there is none):
    a short instruction, then one JSON schema per line between <tools> and </tools>;
  - an assistant turn's calls follow its text, each as <tool_call>{"name", "arguments"}</tool_call>
    on lines of their own;
  - consecutive tool results become one user turn, each result inside <tool_response> tags.

Either way an assistant turn that makes calls is an assistant turn (trained) and tool results are
not (prompt side), so the loss mask needs nothing special for tools.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS_INTRO = ("You can call functions to help with the request. Their JSON schemas are listed between "
               "<tools> and </tools>:")
CALL_INSTRUCTION = ("To call a function, write a JSON object with its name and arguments between <tool_call> and "
                    "</tool_call>, one block per call:\n<tool_call>\n{\"name\": \"<function name>\", "
                    "\"arguments\": {<arguments>}}\n</tool_call>")

_PROBE_MARK = "tunewise-probe-7f3a"
_PROBE_TOOLS = [{"type": "function", "function": {
    "name": "tunewise_probe", "description": f"{_PROBE_MARK}-schema",
    "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]
_PROBE_MESSAGES = [
    {"role": "user", "content": "Probe?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "id": "call_0",
         "function": {"name": "tunewise_probe", "arguments": {"x": f"{_PROBE_MARK}-arg"}}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": f"{_PROBE_MARK}-result"},
    {"role": "assistant", "content": "Done."},
]
_native: dict[tuple[int, str], bool] = {}


def uses_tools(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> bool:
    return bool(tools) or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders tool schemas, tool calls and tool results (cached per template)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        return False
    key = (id(tokenizer), template)
    if key not in _native:
        try:
            text = tokenizer.apply_chat_template(_PROBE_MESSAGES, tools=_PROBE_TOOLS, tokenize=False)
        except Exception:  # noqa: BLE001 - jinja raises its own types; any failure means no tool support
            text = ""
        _native[key] = all(f"{_PROBE_MARK}-{part}" in text for part in ("schema", "arg", "result"))
    return _native[key]


def tool_rendering(tokenizer: Any) -> str:
    """How tools are rendered for this tokenizer, for the data report."""
    return "chat template" if template_renders_tools(tokenizer) else "tunewise text (the chat template has no tool support)"


def template_view(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *,
                  native: bool | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(messages, tools) to hand to `apply_chat_template`. `native` forces a choice (None: ask the template).

    Messages keep their "weight"; whoever renders them drops it. Without tools anywhere the
    messages are returned as they are.
    """
    if not uses_tools(messages, tools):
        return messages, None
    if native is None:
        native = template_renders_tools(tokenizer)
    if native:
        return messages, (tools or None)
    return text_view(messages, tools), None


def text_view(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Messages with tools, tool calls and tool results written as text (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "tool":
            result = f"<tool_response>\n{message['content']}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + result
            else:
                out.append({"role": "user", "content": result, "_tool_results": True})
            continue
        view = {k: v for k, v in message.items() if k not in ("tool_calls", "tool_call_id", "name")}
        if message.get("tool_calls"):
            calls = "\n".join(call_text(call) for call in message["tool_calls"])
            view["content"] = f"{message['content']}\n{calls}" if message["content"].strip() else calls
        out.append(view)
    for message in out:
        message.pop("_tool_results", None)
    if tools:
        out = _with_tool_schemas(out, tools)
    return out


def call_text(call: dict[str, Any]) -> str:
    body = {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}
    return f"<tool_call>\n{json.dumps(body, ensure_ascii=False)}\n</tool_call>"


def tools_text(tools: list[dict[str, Any]]) -> str:
    schemas = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return f"{TOOLS_INTRO}\n<tools>\n{schemas}\n</tools>\n\n{CALL_INSTRUCTION}"


def _with_tool_schemas(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    block = tools_text(tools)
    if messages and messages[0]["role"] == "system":
        system = messages[0]["content"]
        first = {**messages[0], "content": f"{system}\n\n{block}" if system.strip() else block}
        return [first, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]
