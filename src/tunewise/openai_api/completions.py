"""Text completions on the wire (`openai.types.Completion`): the request and the answer objects."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from tunewise.openai_api.chat import StreamOptions
from tunewise.openai_api.errors import bad_request
from tunewise.openai_api.sampling import SamplingFields, ensure_unsupported_absent


class CompletionRequest(SamplingFields):
    model_config = ConfigDict(extra="allow")
    prompt: str | list[str] | list[int] = Field(...)
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = False
    stream_options: StreamOptions | None = None

    def single_prompt(self) -> str | list[int]:
        """One prompt (text or token ids); a batch of prompts is refused with a clear 400."""
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            if len(prompt) != 1:
                raise bad_request("prompt: send one prompt per request (use n for several answers)", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, str) and not prompt:
            raise bad_request("prompt: must not be empty", param="prompt")
        if isinstance(prompt, list) and not prompt:
            raise bad_request("prompt: must not be empty", param="prompt")
        return prompt

    def check(self) -> None:
        if self.echo:
            raise bad_request("echo: not supported by this server", param="echo")
        ensure_unsupported_absent(self, ("suffix", "best_of", "logit_bias"))


def completion_logprobs(tokens: list[str], logprobs: list[float], tops: list[list[tuple[str, float]]],
                        start_offset: int = 0) -> dict[str, Any]:
    offsets, position = [], start_offset
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": [dict(t) for t in tops],
            "text_offset": offsets}


def completion(id: str, created: int, model: str, choices: list[dict[str, Any]],
               usage_: dict[str, int] | None) -> dict[str, Any]:
    """`choices`: [{"text", "finish_reason", "logprobs": completion_logprobs(...) | None}]."""
    body = {"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": c.get("index", i), "text": c["text"], "finish_reason": c["finish_reason"],
                         "logprobs": c["logprobs"]} for i, c in enumerate(choices)],
            "system_fingerprint": None}
    if usage_ is not None:
        body["usage"] = usage_
    return body
