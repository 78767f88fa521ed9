"""Chat rows: {"messages": [...]} as OpenAI's fine-tuning files, TRL and LLaMA-Factory write them.

Variants:
    openai          system/user/assistant messages, text content or text parts, weight 0|1 on assistant turns
    tools           OpenAI tool calling: assistant `tool_calls` (legacy `function_call`), `tool` (legacy
                    `function`) results, top-level `tools` (legacy `functions`)
    llama-factory   LLaMA-Factory v1: content parts {"type": "text" | "tool_call", "value"}, `loss_weight`
                    per message, `tools` as a JSON string

A weight-0 assistant turn stays in the context but gets no loss; tool results never get loss.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import (
    LLAMA_FACTORY,
    OPENAI,
    Dialect,
    check_something_to_learn,
    check_turn_order,
    message_list,
    require,
    system_key,
)
from tunewise.data.formats._tools import check_calls_declared, is_tool_message, row_tools


def conversation(row: dict[str, Any], key: str, dialect: Dialect) -> dict[str, Any]:
    """The conversation record of a row holding a message list under `key` (also used by sharegpt)."""
    messages = system_key(row, message_list(require(row, key), key, dialect))
    tools = row_tools(row)
    check_turn_order(messages, key, dialect=dialect)
    check_something_to_learn(messages, key)
    check_calls_declared(messages, tools, key)
    return {"messages": messages, "tools": tools} if tools else {"messages": messages}


def _openai(row: dict[str, Any]) -> dict[str, Any]:
    return conversation(row, "messages", OPENAI)


def _llama_factory(row: dict[str, Any]) -> dict[str, Any]:
    return conversation(row, "messages", LLAMA_FACTORY)


def choose_variant(row: dict[str, Any]) -> str:
    """llama-factory when a message has loss_weight or {type, value} parts; tools when the row has
    tools or a message calls or answers one; else openai. One pass over the messages."""
    tools = row.get("tools") not in (None, "", []) or row.get("functions") not in (None, [])
    messages = row.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if "loss_weight" in message or (isinstance(content, list) and any(
                isinstance(part, dict) and "value" in part for part in content)):
            return "llama-factory"
        tools = tools or is_tool_message(message)
    return "tools" if tools else "openai"


OPENAI_FIELDS = {
    "messages": "the conversation",
    "messages[].role": "system, user, assistant (developer is read as system)",
    "messages[].content": "the turn's text; text parts are joined",
    "messages[].weight": "on an assistant turn: 1 trains it, 0 keeps it as context only",
    "system": "the system turn, when the messages have none (LLaMA-Factory's system column)",
}
TOOL_FIELDS = {
    "messages[].role": "system, user, assistant; tool and legacy function: tool results, context without loss",
    "messages[].tool_calls": "the assistant's tool calls: trained, rendered by the chat template "
                             "(else as <tool_call> blocks)",
    "messages[].function_call": "a legacy single call, read as tool_calls",
    "messages[].tool_call_id": "ties a tool result to its call (checked)",
    "messages[].name": "the function a tool result answers",
    "tools": "tool schemas, rendered into the prompt by the chat template (else into the system turn)",
    "functions": "legacy tool schemas, read as tools",
}
TOOL_DROPPED = {"parallel_tool_calls": "an inference setting; the calls in each turn are trained as written"}

FORMAT = register(RowFormat(
    name="chat",
    kind="conversation",
    priority=0,
    description="chat messages (OpenAI fine-tuning files, TRL, LLaMA-Factory), with tool calls",
    choose_variant=choose_variant,
    variants=(
        Variant("openai", "OpenAI, TRL", ("messages",), _openai, OPENAI_FIELDS, "conversation",
                example={"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}),
        # Tool rows are told apart by their messages too, so the signature stays messages alone:
        # a KTO row with tools (messages, label, tools) must still count as preference.
        Variant("tools", "OpenAI, TRL", ("messages",), _openai, {**OPENAI_FIELDS, **TOOL_FIELDS},
                "conversation", dropped=TOOL_DROPPED,
                example={"messages": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                        "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "4 C, rain"},
                    {"role": "assistant", "content": "4 C and raining in Oslo."}],
                    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                        "type": "object", "properties": {"city": {"type": "string"}}}}}]}),
        Variant("llama-factory", "LLaMA-Factory (v1)", ("messages",), _llama_factory, {
            "messages": "the conversation",
            "messages[].role": "system, user, assistant; tool: tool results, context without loss",
            "messages[].content": "parts: text parts are joined; tool_call parts (JSON name and arguments) "
                                  "become tool calls",
            "messages[].loss_weight": "1 trains an assistant turn, 0 keeps it as context; prompt turns must be 0",
            "tools": "tool schemas (a JSON string), rendered into the prompt",
        }, "conversation", dropped={"_dataset_name": "added by LLaMA-Factory's data engine",
                                    "extra_info": "free-form notes beside the sample"},
            example={"messages": [
                {"role": "user", "content": [{"type": "text", "value": "Hi"}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": "Hello!"}], "loss_weight": 1.0}]}),
    ),
))
