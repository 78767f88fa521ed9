"""ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}; user/assistant also accepted."""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import (
    check_something_to_learn,
    check_turn_order,
    message_list,
    require,
    text_field,
)

ROLE_NAMES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    messages = message_list(
        require(row, "conversations"), "conversations", role_key="from", content_key="value", role_names=ROLE_NAMES
    )
    # Some ShareGPT exports put the system prompt in a top-level "system" key.
    system = row.get("system")
    if system is not None and messages[0]["role"] != "system":
        system = text_field(system, "system", allow_empty=True)
        if system.strip():
            messages.insert(0, {"role": "system", "content": system})
    check_turn_order(messages, "conversations")
    check_something_to_learn(messages, "conversations")
    return {"messages": messages}


FORMAT = register(RowFormat(
    name="sharegpt",
    signatures=(("conversations",),),
    normalize=normalize,
    kind="conversation",
    priority=1,
    description="ShareGPT: conversations of {from: human|gpt|system, value}",
    example={"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
))
