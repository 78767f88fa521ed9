"""Axolotl's template-free `input_output` rows: {"segments": [{"text": str, "label": bool}, ...]}.

The segments are joined as written, with no chat template and no special tokens added (bos, eos,
spaces and newlines are the writer's, as in Axolotl); loss falls only on segments whose label is
true. Each segment is tokenized on its own, so its first and last tokens are its own.
-> {"segments": [{"text": str, "label": bool}]}
"""

from __future__ import annotations

from typing import Any

from tunewise.data.formats import RowFormat, Variant, register
from tunewise.data.formats._messages import require
from tunewise.data.problems import FieldError
from tunewise.data.readers import json_type_name


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    segments = require(row, "segments")
    if not isinstance(segments, list) or not segments:
        shown = "an empty list" if segments == [] else f"a JSON {json_type_name(segments)}"
        raise FieldError("segments", f"expected a non-empty list of {{text, label}} segments, got {shown}")
    out = []
    for i, segment in enumerate(segments):
        where = f"segments[{i}]"
        if not isinstance(segment, dict):
            raise FieldError(where, f"expected an object with text and label, got a JSON {json_type_name(segment)}")
        text, label = segment.get("text"), segment.get("label")
        if not isinstance(text, str):
            raise FieldError(f"{where}.text", "missing key 'text'" if text is None else
                             f"expected a string, got a JSON {json_type_name(text)}")
        if not isinstance(label, bool):
            raise FieldError(f"{where}.label", "missing key 'label'" if label is None else
                             f"expected true (trained) or false (masked), got a JSON {json_type_name(label)}")
        if text:
            out.append({"text": text, "label": label})
    if not any(s["label"] and s["text"].strip() for s in out):
        raise FieldError("segments", "no segment with label true holds text; nothing to learn from this row")
    return {"segments": out}


FORMAT = register(RowFormat(
    name="input_output",
    kind="text",
    priority=7,
    description="template-free segments of text, each trained (label true) or masked (label false)",
    variants=(
        Variant("axolotl", "Axolotl (type: input_output)", ("segments",), normalize, {
            "segments": "joined as written, no template and no special tokens added",
            "segments[].text": "the segment's text",
            "segments[].label": "true: trained; false: context only",
        }, "text", example={"segments": [{"text": "Q: 2+2?\nA: ", "label": False}, {"text": "4", "label": True}]}),
    ),
))
