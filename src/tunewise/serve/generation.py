"""One request in flight, as its caller sees it: events to iterate, the text so far, usage, the end.

The batcher emits events from its own thread; a Generation hands them to an asyncio queue (when
created with a loop, for the HTTP server) or a thread-safe queue (plain Python callers).
"""

from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from tunewise.serve.batching import ErrorEvent, FinishEvent, Request, TokenEvent
from tunewise.serve.names import ResolvedModel


@dataclass
class Selection:
    """What a request's `model` selected: the resolved model, and the A/B route and variant if routed."""

    requested: str
    model: ResolvedModel
    route: str | None = None
    variant: str | None = None
    shadow: ResolvedModel | None = None

    @property
    def version_header(self) -> str:
        return self.model.version or self.model.id


@dataclass
class ChoiceResult:
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprobs: list[tuple[int, float, list[tuple[int, float]]]] = field(default_factory=list)
    finish_reason: str | None = None


class Generation:
    def __init__(self, id: str, selection: Selection, prompt_tokens: int, n: int,
                 loop: asyncio.AbstractEventLoop | None = None, on_done: Any = None):
        self.id = id
        self.selection = selection
        self.prompt_tokens = prompt_tokens
        self.created = int(time.time())
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.choices = [ChoiceResult() for _ in range(n)]
        self.error: Exception | None = None
        self.request: Request | None = None
        self._loop = loop
        self._async_queue: asyncio.Queue | None = asyncio.Queue() if loop is not None else None
        self._queue: queue.Queue = queue.Queue()
        self._on_done = on_done

    # --- called by the batcher thread ---------------------------------------------------------

    def emit(self, event: Any) -> None:
        if isinstance(event, TokenEvent):
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            choice = self.choices[event.index]
            choice.text += event.text
            choice.tokens.append(event.token_id)
            if event.logprob is not None:
                choice.logprobs.append((event.token_id, event.logprob, event.top_logprobs))
        elif isinstance(event, FinishEvent):
            choice = self.choices[event.index]
            choice.text += event.text
            choice.finish_reason = event.reason
        elif isinstance(event, ErrorEvent):
            self.error = event.error
        done = self.error is not None or all(c.finish_reason for c in self.choices)
        if done:
            self.finished_at = time.monotonic()
        self._deliver(event)
        if done and self._on_done is not None:
            self._on_done(self)

    def _deliver(self, event: Any) -> None:
        if self._async_queue is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._async_queue.put_nowait, event)
            except RuntimeError:  # the loop closed: the client is gone
                pass
        else:
            self._queue.put(event)

    # --- for the caller ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.error is not None or all(c.finish_reason for c in self.choices)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.choices)

    async def events(self):
        """Events as they come (TokenEvent, FinishEvent, ErrorEvent), ending after the last one."""
        assert self._async_queue is not None, "created without an event loop: use wait()"
        remaining = len(self.choices)
        while remaining:
            event = await self._async_queue.get()
            if isinstance(event, ErrorEvent):
                yield event
                return
            if isinstance(event, FinishEvent):
                remaining -= 1
            yield event

    def wait(self, timeout: float | None = None) -> Generation:
        """Block until finished (plain Python callers); raises the request's error, if any."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self._queue.get(timeout=left)
            except queue.Empty:
                raise TimeoutError(f"generation {self.id} did not finish in {timeout} s") from None
        if self.error is not None:
            raise self.error
        return self

    def abort(self) -> None:
        """The client went away: stop generating for it at the next step."""
        if self.request is not None:
            self.request.aborted = True
