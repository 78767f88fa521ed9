"""`POST /v1/feedback` (ours, not OpenAI's): an outcome for an answer, by its response id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1, max_length=64, description="The `id` of a chat.completion or text_completion.")
    score: float | None = Field(None, description="A rating on the scale you choose (e.g. 0-1 or 1-5).")
    thumbs: Literal["up", "down"] | None = Field(None, description="Counted as score 1 (up) or 0 (down).")
    text: str | None = Field(None, max_length=4000)
