"""Alpaca: {"instruction", "input" (optional), "output"} -> one user turn and one assistant turn."""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import require, text_field


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    instruction = text_field(require(row, "instruction"), "instruction")
    extra = row.get("input")
    extra = "" if extra is None else text_field(extra, "input", allow_empty=True)
    output = text_field(require(row, "output"), "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}]}


FORMAT = register(RowFormat(
    name="alpaca",
    signatures=(("instruction", "output"),),
    normalize=normalize,
    kind="conversation",
    priority=3,
    description='Alpaca: instruction, optional input, output (user = instruction + "\\n\\n" + input)',
    example={"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
))
