"""Preference rows as OpenAI and LLaMA-Factory write them, each read into a paired or unpaired record.

OpenAI (what `method: dpo` fine-tuning jobs upload):
    {"input": {"messages": [...], "tools": [...], "parallel_tool_calls": bool},
     "preferred_output": [assistant message], "non_preferred_output": [assistant message]}
LLaMA-Factory:
    ShareGPT pairs   {"conversations": [...], "chosen": {"from": "gpt", "value"}, "rejected": {...}}
    alpaca pairs     {"instruction", "input"?, "chosen", "rejected", "system"?, "history"?}
    v1 pairs         {"chosen_messages": [...], "rejected_messages": [...]}: whole conversations, shared prompt
    KTO rows         {"messages" | "conversations": [..., answer], "label" | "kto_tag": bool}
                     {"instruction", "input"?, "output", "kto_tag" | "label": bool}
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats._messages import (
    LLAMA_FACTORY,
    OPENAI,
    SHAREGPT,
    Dialect,
    message_list,
    require,
    require_in,
    system_key,
)
from tunewise.data.formats._pairs import (
    answer_messages,
    label_value,
    paired,
    prompt_messages,
    split_conversation,
    split_implicit,
    unpaired,
)
from tunewise.data.formats._tools import row_tools
from tunewise.data.formats.alpaca import history_turns, user_text
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name


def openai_pair(row: dict[str, Any]) -> dict[str, Any]:
    source = require(row, "input")
    if not isinstance(source, dict):
        raise FieldError("input", f"expected an object with messages, got a JSON {json_type_name(source)}")
    prompt = prompt_messages(require_in(source, "messages", "input"), "input.messages")
    try:
        tools = row_tools(source)
    except FieldError as err:
        raise FieldError(f"input.{err.field}", err.reason) from None
    chosen = answer_messages(require(row, "preferred_output"), "preferred_output")
    rejected = answer_messages(require(row, "non_preferred_output"), "non_preferred_output")
    return paired(prompt, chosen, rejected, tools, ("preferred_output", "non_preferred_output"))


def sharegpt_pair(row: dict[str, Any]) -> dict[str, Any]:
    prompt = system_key(row, prompt_messages(require(row, "conversations"), "conversations", SHAREGPT))
    chosen = answer_messages(require(row, "chosen"), "chosen", SHAREGPT)
    rejected = answer_messages(require(row, "rejected"), "rejected", SHAREGPT)
    return paired(prompt, chosen, rejected, row_tools(row))


def alpaca_pair(row: dict[str, Any]) -> dict[str, Any]:
    prompt = system_key(row, history_turns(row) + [{"role": "user", "content": user_text(row)}])
    return paired(prompt, answer_messages(require(row, "chosen"), "chosen"),
                  answer_messages(require(row, "rejected"), "rejected"), [])


def v1_pair(row: dict[str, Any]) -> dict[str, Any]:
    chosen = message_list(require(row, "chosen_messages"), "chosen_messages", LLAMA_FACTORY)
    rejected = message_list(require(row, "rejected_messages"), "rejected_messages", LLAMA_FACTORY)
    prompt, chosen, rejected = split_implicit(chosen, rejected, "chosen_messages", "rejected_messages")
    return paired(prompt, chosen, rejected, row_tools(row), ("chosen_messages", "rejected_messages"))


def kto_messages(row: dict[str, Any]) -> dict[str, Any]:
    return _kto_conversation(row, "messages", OPENAI)


def kto_sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    return _kto_conversation(row, "conversations", SHAREGPT)


def _kto_conversation(row: dict[str, Any], key: str, dialect: Dialect) -> dict[str, Any]:
    label = label_value(row)  # first: a KTO row without a usable label must not pass as anything else
    messages = system_key(row, message_list(require(row, key), key, dialect))
    prompt, completion = split_conversation(messages, key, dialect)
    for message in completion:
        message.pop("weight", None)
    return unpaired(prompt, completion, label, row_tools(row))


def kto_alpaca(row: dict[str, Any]) -> dict[str, Any]:
    label = label_value(row)
    prompt = system_key(row, history_turns(row) + [{"role": "user", "content": user_text(row)}])
    return unpaired(prompt, answer_messages(require(row, "output"), "output"), label, [])
