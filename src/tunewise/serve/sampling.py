"""Choosing the next token: greedy, temperature, nucleus (top_p), per-request seeds, logprobs.

Greedy (temperature 0) is a plain argmax of the model's logits, as transformers' `generate` with
`do_sample=False` does, so a greedy answer matches it token for token. Logprobs are those of the
model's own distribution (log-softmax of the raw logits, before temperature or a JSON constraint),
which is what OpenAI's `logprobs` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tunewise.serve.errors import InvalidRequest

MAX_TOP_LOGPROBS = 20
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class SamplingParams:
    """What one request asks for; validated here so every entry point gets the same checks."""

    max_tokens: int | None = None  # None: as many as the context allows, up to the server's default
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    json_schema: dict[str, Any] | None = field(default=None, hash=False)
    n: int = 1
    ignore_eos: bool = False  # generate max_tokens whatever comes (benchmarks); not exposed over HTTP

    def __post_init__(self) -> None:
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise InvalidRequest(f"max_tokens: must be a positive integer, got {self.max_tokens!r}", param="max_tokens")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidRequest(f"temperature: must be between 0 and 2, got {self.temperature}", param="temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidRequest(f"top_p: must be in (0, 1], got {self.top_p}", param="top_p")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs: must be between 0 and {MAX_TOP_LOGPROBS}, got {self.top_logprobs}",
                                 param="top_logprobs")
        if len(self.stop) > MAX_STOP_SEQUENCES or any(not s for s in self.stop):
            raise InvalidRequest(f"stop: up to {MAX_STOP_SEQUENCES} non-empty strings", param="stop")
        if not 1 <= self.n <= 16:
            raise InvalidRequest(f"n: must be between 1 and 16, got {self.n}", param="n")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def make_generator(seed: int | None, index: int) -> torch.Generator | None:
    """A generator per choice: the same seed gives the same answers; choice i draws from seed + i."""
    if seed is None:
        return None
    generator = torch.Generator()
    generator.manual_seed((seed + index) % (2**63))
    return generator


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of (possibly masked) fp32 logits."""
    if params.greedy:
        return int(torch.argmax(logits))
    scaled = logits / params.temperature
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p  # always keeps the first
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        picked = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[picked])
    return int(torch.multinomial(probs, 1, generator=generator))


def token_logprobs(logits: torch.Tensor, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's logprob and the `top` most likely tokens with theirs."""
    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = float(logprobs[token])
    if top <= 0:
        return chosen, []
    values, indices = torch.topk(logprobs, top)
    return chosen, list(zip(indices.tolist(), values.tolist()))
