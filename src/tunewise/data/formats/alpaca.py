"""Alpaca: {"instruction", "input" (optional), "output"} -> one user turn and one assistant turn.

LLaMA-Factory's alpaca rows may add `system` (the system turn) and `history`, a list of
[instruction, response] pairs that come before it; their responses are trained too, as
LLaMA-Factory trains them.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import require, system_key, text_field
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name


def user_text(row: dict[str, Any]) -> str:
    """instruction + "\\n\\n" + input, or the instruction alone when input is empty."""
    instruction = text_field(require(row, "instruction"), "instruction")
    extra = row.get("input")
    extra = "" if extra is None else text_field(extra, "input", allow_empty=True)
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


def history_turns(row: dict[str, Any]) -> list[dict[str, Any]]:
    """LLaMA-Factory's `history`: [[instruction, response], ...] as user/assistant turns."""
    history = row.get("history")
    if history in (None, ""):
        return []
    if not isinstance(history, list):
        raise FieldError("history",
                         f"expected a list of [instruction, response] pairs, got a JSON {json_type_name(history)}")
    turns = []
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2:
            raise FieldError(f"history[{i}]", "expected an [instruction, response] pair")
        turns.append({"role": "user", "content": text_field(pair[0], f"history[{i}][0]")})
        turns.append({"role": "assistant", "content": text_field(pair[1], f"history[{i}][1]")})
    return turns


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    user = user_text(row)
    output = text_field(require(row, "output"), "output")
    messages = history_turns(row) + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": system_key(row, messages)}


FORMAT = register(RowFormat(
    name="alpaca",
    kind="conversation",
    priority=3,
    description='Alpaca: instruction, optional input, output (user = instruction + "\\n\\n" + input)',
    variants=(
        Variant("alpaca", "Stanford Alpaca, LLaMA-Factory, Axolotl", ("instruction", "output"), normalize, {
            "instruction": "the user turn",
            "input": 'appended to the user turn after a blank line ("\\n\\n")',
            "output": "the assistant turn (trained)",
            "system": "the system turn (LLaMA-Factory)",
            "history": "earlier [instruction, response] pairs, before the user turn; their responses are trained "
                       "(LLaMA-Factory)",
        }, "conversation", example={"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}),
    ),
))
