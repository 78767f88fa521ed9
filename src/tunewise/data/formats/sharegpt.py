"""ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}; user/assistant also accepted.

Variants:
    sharegpt                 human/gpt/system turns, optional top-level `system`
    tools (llama-factory)    LLaMA-Factory's tool calling: `function_call` turns (the value is the call as
                             JSON {"name", "arguments"}, or a list of them), `observation` turns (tool
                             results), and `tools` (a JSON string or list of function schemas)
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import SHAREGPT
from tunewise.data.formats.chat import conversation


def _normalize(row: dict[str, Any]) -> dict[str, Any]:
    return conversation(row, "conversations", SHAREGPT)


def choose_variant(row: dict[str, Any]) -> str:
    turns = row.get("conversations")
    calls = isinstance(turns, list) and any(isinstance(t, dict) and t.get("from") in ("function_call", "observation")
                                            for t in turns)
    return "tools (llama-factory)" if calls or row.get("tools") not in (None, "", []) else "sharegpt"


FIELDS = {
    "conversations": "the conversation",
    "conversations[].from": "human -> user, gpt -> assistant, system (user and assistant are accepted too)",
    "conversations[].value": "the turn's text",
    "conversations[].weight": "on an assistant turn: 1 trains it, 0 keeps it as context only",
    "system": "the system turn, when the conversation has none",
}

FORMAT = register(RowFormat(
    name="sharegpt",
    kind="conversation",
    priority=1,
    description="ShareGPT conversations of {from, value}, with LLaMA-Factory's tool-calling roles",
    choose_variant=choose_variant,
    variants=(
        Variant("sharegpt", "ShareGPT, LLaMA-Factory, Axolotl", ("conversations",), _normalize, FIELDS, "conversation",
                example={"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}),
        Variant("tools (llama-factory)", "LLaMA-Factory", ("conversations",), _normalize, {
            **FIELDS,
            "conversations[].from": "human -> user, gpt -> assistant, system; function_call -> an assistant tool call "
                                    "(trained); observation -> a tool result (context without loss)",
            "conversations[].value": "the turn's text; for function_call, the call as JSON {name, arguments}",
            "tools": "tool schemas (a JSON string or a list), rendered into the prompt",
        }, "conversation", example={
            "conversations": [
                {"from": "human", "value": "Weather in Oslo?"},
                {"from": "function_call", "value": "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}"},
                {"from": "observation", "value": "4 C, rain"},
                {"from": "gpt", "value": "4 C and raining in Oslo."}],
            "tools": "[{\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "
                     "\"properties\": {\"city\": {\"type\": \"string\"}}}}]"}),
    ),
))
