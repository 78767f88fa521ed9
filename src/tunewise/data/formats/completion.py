"""Prompt/completion pairs, trained as a conversation whose completion is the answer.

Variants:
    text                 {"prompt": str, "completion": str} -> one user turn and one assistant turn
    trl conversational   TRL's conversational prompt-completion: both are message lists (the prompt
                         ends with a user or tool turn; the completion holds the assistant's turns),
                         optional `tools`. Only the completion is trained: assistant turns inside
                         the prompt get weight 0, as TRL trains on the completion alone.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import check_turn_order, message_list, require, text_field
from tunewise.data.formats._tools import check_calls_declared, row_tools
from tunewise.data.problems import FieldError


def _text(row: dict[str, Any]) -> dict[str, Any]:
    prompt = text_field(require(row, "prompt"), "prompt")
    completion = text_field(require(row, "completion"), "completion")
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}


def _conversational(row: dict[str, Any]) -> dict[str, Any]:
    prompt = message_list(require(row, "prompt"), "prompt")
    check_turn_order(prompt, "prompt", last="user")
    completion = message_list(require(row, "completion"), "completion")
    if completion[0]["role"] != "assistant":
        raise FieldError("completion[0].role",
                         f"the completion starts with the assistant's turn, got {completion[0]['role']!r}")
    messages = [({**m, "weight": 0} if m["role"] == "assistant" else m) for m in prompt] + completion
    check_turn_order(messages, "prompt + completion")
    if all(m.get("weight", 1) == 0 for m in completion if m["role"] == "assistant"):
        raise FieldError("completion", "every assistant turn has weight 0; nothing to learn from this row")
    tools = row_tools(row)
    check_calls_declared(messages, tools, "prompt + completion")
    return {"messages": messages, "tools": tools} if tools else {"messages": messages}


def choose_variant(row: dict[str, Any]) -> str:
    return "trl conversational" if isinstance(row.get("prompt"), list) or isinstance(row.get("completion"), list) else "text"


FORMAT = register(RowFormat(
    name="completion",
    kind="conversation",
    priority=4,
    description="prompt/completion pairs (text or TRL's message lists), trained as a user turn and the answer",
    choose_variant=choose_variant,
    variants=(
        Variant("text", "TRL (standard prompt-completion), tunewise", ("prompt", "completion"), _text, {
            "prompt": "the user turn", "completion": "the assistant turn (trained)"}, "conversation",
            example={"prompt": "The capital of France is", "completion": "Paris."}),
        Variant("trl conversational", "TRL (conversational prompt-completion)", ("prompt", "completion"), _conversational, {
            "prompt": "messages ending with a user or tool turn: context; assistant turns in it are not trained",
            "completion": "the assistant's turns (trained; tool calls included)",
            "tools": "tool schemas, rendered into the prompt",
        }, "conversation", example={"prompt": [{"role": "user", "content": "What color is the sky?"}],
                                    "completion": [{"role": "assistant", "content": "It is blue."}]}),
    ),
))
