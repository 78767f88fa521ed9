"""Request fields chat and text completions share, and their translation to the engine's SamplingParams."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.openai_api.errors import bad_request


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    user: str | None = Field(None, max_length=256)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def check_penalties(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise bad_request(f"{name}: not supported by this server (send 0 or leave it out)", param=name)


def ensure_unsupported_absent(request: BaseModel, names: tuple[str, ...]) -> None:
    """A 400 naming the first field this server does not implement, rather than silently ignoring it."""
    extra: dict[str, Any] = request.model_extra or {}
    for name in names:
        if extra.get(name) not in (None, [], {}):
            raise bad_request(f"{name}: not supported by this server", param=name)
