"""OpenAI chat JSONL: {"messages": [{"role": "system"|"user"|"assistant", "content": ..., "weight": 0|1}]}.

A weight-0 assistant turn stays in the context but gets no loss.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import check_something_to_learn, check_turn_order, message_list, require


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    messages = message_list(require(row, "messages"), "messages")
    check_turn_order(messages, "messages")
    check_something_to_learn(messages, "messages")
    return {"messages": messages}


FORMAT = register(RowFormat(
    name="chat",
    signatures=(("messages",),),
    normalize=normalize,
    kind="conversation",
    priority=0,
    description="OpenAI chat: messages with system/user/assistant roles, optional weight 0/1 on assistant turns",
    example={"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
))
