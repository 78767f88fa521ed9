"""Prompts alone, for the RL methods (ppo, grpo) that sample and score their own answers.

{"prompt": "Describe rain."}  or  {"prompt": [{"role": "system", ...}, {"role": "user", ...}]}
    -> {"prompt": [messages]}

The prompt is checked as in preference rows: a string is one user turn; a message list may open
with a system message, alternates user and assistant turns, and ends with a user turn.
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import require
from tunewise.data.formats.preference import prompt_messages


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": prompt_messages(require(row, "prompt"))}


FORMAT = register(RowFormat(
    name="prompt",
    kind="prompt",
    priority=6,
    description="prompts only (text, or messages ending with a user turn), for ppo and grpo, which sample the answers",
    variants=(
        Variant("prompt", "TRL (prompt-only)", ("prompt",), normalize,
                {"prompt": "a string (one user turn) or messages ending with a user turn"}, "prompt",
                example={"prompt": "Describe rain in one sentence."}),
    ),
))
