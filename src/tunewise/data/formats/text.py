"""Raw text for continued pre-training: {"text": ...}; every token gets loss."""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import require, text_field


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    return {"text": text_field(require(row, "text"), "text")}


FORMAT = register(RowFormat(
    name="text",
    kind="text",
    priority=5,
    description="raw text for continued pre-training (field text); all tokens get loss, eos appended",
    variants=(
        Variant("text", "TRL, LLaMA-Factory, Axolotl (completion)", ("text",), normalize,
                {"text": "the document; every token is trained, eos appended"}, "text",
                example={"text": "Photosynthesis turns light into chemical energy."}),
    ),
))
