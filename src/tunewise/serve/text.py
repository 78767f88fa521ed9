"""Turning generated tokens into text as they come: incremental decoding, stop strings, JSON.

Streaming sends text deltas; a delta is held back while it may still become a stop string (so a
stop string is never sent, even in part) or while it ends in an incomplete UTF-8 character.
"""

from __future__ import annotations

from typing import Any

from tunewise.serve.errors import InvalidRequest

_REPLACEMENT = "\ufffd"


class TextTracker:
    """The text of one choice so far, what has been sent, and whether a stop string ended it."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.token_ids: list[int] = []
        self.text = ""
        self.sent = 0  # characters of `text` already handed out
        self.stopped = False

    def add(self, token_id: int) -> str:
        """Add a token; returns the text that may be sent now (possibly empty)."""
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.endswith(_REPLACEMENT):  # a multi-byte character split across tokens: wait for the rest
            return ""
        self.text = text
        if self.stop:
            found = self._find_stop()
            if found is not None:
                self.text = text[:found]
                self.stopped = True
                return self._release(len(self.text))
            return self._release(len(text) - self._held_back(text))
        return self._release(len(text))

    def flush(self) -> str:
        """At the end: everything not sent yet (the held-back tail that never became a stop string)."""
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        delta = self.text[self.sent:upto]
        self.sent = upto
        return delta

    def _find_stop(self) -> int | None:
        window_start = max(0, self.sent - max(len(s) for s in self.stop))
        positions = [p for p in (self.text.find(s, window_start) for s in self.stop) if p >= 0]
        return min(positions) if positions else None

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of `text` that is the start of a stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest


class JsonConstraint:
    """Constrained decoding to a JSON schema with llguidance: only tokens that keep the output a
    valid prefix of a matching document are allowed, and end-of-sequence only once it is complete."""

    def __init__(self, lltokenizer: Any, schema: dict[str, Any]):
        import json

        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema),
                                                                    defaults={"whitespace_flexible": False})
        except (ValueError, TypeError) as err:
            raise InvalidRequest(f"response_format.json_schema.schema: {err}", param="response_format") from None
        self.matcher = llguidance.LLMatcher(lltokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise InvalidRequest(f"response_format.json_schema.schema: {self.matcher.get_error()}",
                                 param="response_format")

    def mask(self, logits: Any) -> None:
        """Set the logits of every forbidden token to -inf, in place (logits: one fp32 row)."""
        import numpy as np
        import torch

        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: logits.shape[0]].astype(bool)
        if allowed.shape[0] < logits.shape[0]:  # rows past the tokenizer's vocabulary are never allowed
            allowed = np.concatenate([allowed, np.zeros(logits.shape[0] - allowed.shape[0], dtype=bool)])
        logits.masked_fill_(~torch.from_numpy(allowed), float("-inf"))

    def accept(self, token_id: int) -> None:
        self.matcher.consume_token(token_id)

    @property
    def done(self) -> bool:
        return self.matcher.is_stopped()


_LLTOKENIZERS: dict[int, Any] = {}


def lltokenizer_for(tokenizer: Any, vocab_size: int) -> Any:
    """llguidance's view of a Hugging Face tokenizer (about a second to build, so kept per tokenizer)."""
    key = id(tokenizer)
    if key not in _LLTOKENIZERS:
        import llguidance.hf

        _LLTOKENIZERS[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
    return _LLTOKENIZERS[key]
