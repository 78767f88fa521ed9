"""Prompt/completion pairs: {"prompt", "completion"} -> one user turn and one assistant turn."""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import require, text_field


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    prompt = text_field(require(row, "prompt"), "prompt")
    completion = text_field(require(row, "completion"), "completion")
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}


FORMAT = register(RowFormat(
    name="completion",
    signatures=(("prompt", "completion"),),
    normalize=normalize,
    kind="conversation",
    priority=4,
    description="prompt/completion pairs, trained as one user turn and one assistant answer",
    example={"prompt": "The capital of France is", "completion": "Paris."},
))
