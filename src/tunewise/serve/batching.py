"""Continuous batching: one loop per loaded model, requests join and leave between decode steps.

Each step packs one new token for every running choice plus as much waiting prompt as the token
budget allows (long prompts are prefilled in chunks, so a long prompt never stalls the others), for
any mix of adapters, into one forward pass (backends/packed_forward.py). A request is admitted
when its adapter is in the model tier and its key/value cache fits the cache budget; until then
it waits (`num_requests_waiting`). A finished request leaves at once and frees its cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from tunewise.serve.backends.packed_forward import Chunk, PackedForward, SequenceCache
from tunewise.serve.errors import EngineStopped, ModelRefused, ServeError
from tunewise.serve.names import ResolvedModel
from tunewise.serve.sampling import SamplingParams, choose_token, make_generator, token_logprobs
from tunewise.serve.text import JsonConstraint, TextTracker

log = logging.getLogger("tunewise.serve")


@dataclass
class TokenEvent:
    index: int  # the choice
    token_id: int
    text: str  # the text this token released (may be empty: held back or mid-character)
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class FinishEvent:
    index: int
    reason: str  # stop | length
    text: str  # the rest of the text, not yet sent
    completion_tokens: int


@dataclass
class ErrorEvent:
    error: ServeError


@dataclass
class Request:
    """One API request as the batcher sees it: a prompt, what to sample, where events go."""

    id: str
    model: ResolvedModel
    prompt_ids: list[int]
    params: SamplingParams
    tokenizer: Any
    emit: Callable[[Any], None]
    eos_ids: frozenset[int]
    lltokenizer: Any = None
    arrival: float = field(default_factory=time.monotonic)
    observer: Any = None  # metrics hooks: first_token(request, t), token(request, t), finished(request, reason)
    labels: dict[str, str] = field(default_factory=dict)
    aborted: bool = False
    first_token_at: float | None = None
    choices: list[_Choice] = field(default_factory=list)
    adapter: Any = None


@dataclass
class _Choice:
    request: Request
    index: int
    cache: SequenceCache | None = None
    output: list[int] = field(default_factory=list)
    computed: int = 0  # tokens of prompt + output already in the cache
    generator: torch.Generator | None = None
    constraint: JsonConstraint | None = None
    text: TextTracker | None = None
    finished: bool = False
    last_token_at: float = 0.0

    @property
    def pending(self) -> list[int]:
        """Tokens not yet in the cache: the rest of the prompt, or the last sampled token."""
        prompt = self.request.prompt_ids
        if self.computed < len(prompt):
            return prompt[self.computed:]
        return self.output[self.computed - len(prompt):]


class Batcher:
    """The decode loop of one loaded model (a base with its adapters, or a merged model)."""

    def __init__(self, runner: PackedForward, adapters: Any, *, max_running: int = 64, step_tokens: int = 512,
                 cache_budget_bytes: int = 4 << 30, name: str = "model"):
        self.runner = runner
        self.adapters = adapters  # AdapterCache, or None for a model without adapters
        self.max_running = max_running
        self.step_tokens = step_tokens
        self.cache_budget_bytes = cache_budget_bytes
        self._inbox: deque[Request] = deque()
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._wake = threading.Condition()
        self._stopped = False
        self.steps = 0
        self._thread = threading.Thread(target=self._loop, name=f"tunewise-batcher-{name}", daemon=True)
        self._thread.start()

    # --- from any thread ------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        if self._stopped:
            raise EngineStopped("the engine is shutting down")
        with self._wake:
            self._inbox.append(request)
            self._wake.notify()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) requests."""
        return len(self._running), len(self._waiting) + len(self._inbox)

    def in_flight(self, key: str) -> int:
        """Requests admitted or waiting for the weights with this cache key."""
        every = list(self._running) + list(self._waiting) + list(self._inbox)
        return sum(1 for r in every if r.model.cache_key == key)

    def stop(self) -> None:
        self._stopped = True
        self.wake()
        self._thread.join(timeout=10)

    # --- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped:
            with self._wake:
                while not self._stopped and not (self._inbox or self._running or self._admissible()):
                    self._wake.wait(timeout=0.5)
                while self._inbox:
                    self._waiting.append(self._inbox.popleft())
            if self._stopped:
                break
            try:
                self._admit()
                if self._running:
                    self._step()
            except Exception as err:  # a bug must fail the requests in the batch, not the server
                log.exception("decode step failed")
                for request in self._running:
                    self._fail(request, ModelRefused(f"generation failed ({type(err).__name__}: {err})"))
                self._running = []
        for request in list(self._running) + list(self._waiting) + list(self._inbox):
            self._fail(request, EngineStopped("the engine stopped before this request finished"))

    def _admissible(self) -> bool:
        """Whether a waiting request could be admitted now (not all of them wait for a load)."""
        return any(not self._loading(r) for r in self._waiting)

    def _loading(self, request: Request) -> bool:
        return request.model.is_adapter and self.adapters is not None and self.adapters.loading(request.model.cache_key)

    def _cache_bytes(self) -> int:
        return sum(c.cache.nbytes for r in self._running for c in r.choices if c.cache is not None)

    def _admit(self) -> None:
        still_waiting: deque[Request] = deque()
        while self._waiting:
            request = self._waiting.popleft()
            if request.aborted:
                continue
            choices = request.params.n
            running_choices = sum(len(r.choices) for r in self._running)
            needed = choices * (len(request.prompt_ids) + request.params.max_tokens) * self.runner.cache_bytes_per_token()
            full = running_choices + choices > self.max_running or (
                self._running and self._cache_bytes() + needed > self.cache_budget_bytes)
            if full:
                still_waiting.append(request)
                continue
            if request.model.is_adapter and self.adapters is not None:
                try:
                    request.adapter = self.adapters.acquire(request.model)
                except ModelRefused as err:
                    self._fail(request, err)
                    continue
                if request.adapter is None:
                    still_waiting.append(request)
                    continue
            self._start(request)
        self._waiting = still_waiting

    def _start(self, request: Request) -> None:
        capacity = len(request.prompt_ids) + request.params.max_tokens
        for index in range(request.params.n):
            choice = _Choice(request, index, cache=self.runner.new_cache(capacity),
                             generator=make_generator(request.params.seed, index),
                             text=TextTracker(request.tokenizer, request.params.stop))
            if request.params.json_schema is not None:
                choice.constraint = JsonConstraint(request.lltokenizer, request.params.json_schema)
            request.choices.append(choice)
        self._running.append(request)

    def _step(self) -> None:
        budget = self.step_tokens
        chunks, owners = [], []
        live = [c for r in self._running for c in r.choices if not c.finished]
        for choice in sorted(live, key=lambda c: c.computed < len(c.request.prompt_ids)):  # decodes first
            pending = choice.pending
            if choice.computed < len(choice.request.prompt_ids):
                if budget <= 0:
                    continue
                pending = pending[:budget]
            budget -= len(pending)
            done_prompt = choice.computed + len(pending) >= len(choice.request.prompt_ids)
            chunks.append(Chunk(choice.cache, pending, choice.request.adapter, done_prompt))
            owners.append((choice, len(pending), done_prompt))
        logits = self.runner.forward(chunks)
        self.steps += 1
        now = time.monotonic()
        row = 0
        for choice, count, has_logits in owners:
            choice.computed += count
            if has_logits:
                self._sample(choice, logits[row], now)
                row += 1
        self._retire()

    def _sample(self, choice: _Choice, logits: torch.Tensor, now: float) -> None:
        request, params = choice.request, choice.request.params
        raw = logits
        if choice.constraint is not None:
            logits = logits.clone()
            choice.constraint.mask(logits)
        token = choose_token(logits, params, choice.generator)
        logprob, top = token_logprobs(raw, token, params.top_logprobs) if params.logprobs else (None, [])
        if choice.constraint is not None:
            choice.constraint.accept(token)
        choice.output.append(token)
        if request.first_token_at is None:
            request.first_token_at = now
            if request.observer is not None:
                request.observer.first_token(request, now)
        elif request.observer is not None:
            request.observer.token(request, now - choice.last_token_at)
        choice.last_token_at = now
        if token in request.eos_ids and not params.ignore_eos:
            self._finish(choice, "stop")
            return
        text = choice.text.add(token)
        request.emit(TokenEvent(choice.index, token, text, logprob, top))
        if choice.text.stopped or (choice.constraint is not None and choice.constraint.done):
            self._finish(choice, "stop")
        elif len(choice.output) >= params.max_tokens:
            self._finish(choice, "length")

    def _finish(self, choice: _Choice, reason: str) -> None:
        choice.finished = True
        choice.cache = None
        request = choice.request
        request.emit(FinishEvent(choice.index, reason, choice.text.flush(), len(choice.output)))
        if request.observer is not None and all(c.finished for c in request.choices):
            request.observer.finished(request, reason)

    def _retire(self) -> None:
        keep = []
        for request in self._running:
            if request.aborted:
                for choice in request.choices:
                    choice.finished, choice.cache = True, None
            if all(c.finished for c in request.choices):
                if request.adapter is not None:
                    self.adapters.release(request.model)
                continue
            keep.append(request)
        self._running = keep

    def _fail(self, request: Request, error: ServeError) -> None:
        if request.adapter is not None and self.adapters is not None:
            self.adapters.release(request.model)
            request.adapter = None
        request.emit(ErrorEvent(error))
        if request.observer is not None:
            request.observer.failed(request)
