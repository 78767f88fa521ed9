"""Raw text for continued pre-training: {"text": ...}; every token gets loss."""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, register
from tunewise.data.formats._messages import require, text_field


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    return {"text": text_field(require(row, "text"), "text")}


FORMAT = register(RowFormat(
    name="text",
    signatures=(("text",),),
    normalize=normalize,
    kind="text",
    priority=5,
    description="raw text for continued pre-training (field text); all tokens get loss, eos appended",
    example={"text": "Photosynthesis turns light into chemical energy."},
))
