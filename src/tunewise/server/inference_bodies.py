"""Answers in OpenAI's shapes from a finished or streaming Generation (chat and text completions)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from tunewise.openai_api import chat as chat_wire
from tunewise.openai_api import completions as completion_wire
from tunewise.openai_api.errors import APIError
from tunewise.serve.batching import ErrorEvent, FinishEvent, TokenEvent
from tunewise.serve.errors import ServeError
from tunewise.serve.generation import Generation


def api_error(err: Exception) -> APIError:
    """An engine error as the HTTP error the client sees."""
    if isinstance(err, APIError):
        return err
    if isinstance(err, ServeError):
        headers = {"x-should-retry": "false"} if err.status >= 500 else None
        return APIError(err.status, err.message, param=err.param, code=err.code, headers=headers)
    from tunewise.errors import TunewiseError

    if isinstance(err, TunewiseError):  # e.g. a base model that cannot be resolved
        return APIError(503, err.message, code="model_refused", headers={"x-should-retry": "false"})
    return APIError(500, f"internal error ({type(err).__name__})", code="internal_error")


def _token_text(tokenizer: Any, token_id: int) -> str:
    return tokenizer.decode([token_id])


def chat_logprobs(tokenizer: Any, entries: list[tuple[int, float, list[tuple[int, float]]]]) -> list[dict[str, Any]]:
    return [chat_wire.token_logprob(_token_text(tokenizer, tid), lp, [(_token_text(tokenizer, t), v) for t, v in top])
            for tid, lp, top in entries]


def chat_body(gen: Generation, tokenizer: Any, want_logprobs: bool) -> dict[str, Any]:
    choices = [{"text": c.text, "finish_reason": c.finish_reason,
                "logprobs": chat_logprobs(tokenizer, c.logprobs) if want_logprobs else None} for c in gen.choices]
    return chat_wire.chat_completion(gen.id, gen.created, gen.selection.model.id, choices,
                                     chat_wire.usage(gen.prompt_tokens, gen.completion_tokens))


def completion_body(gen: Generation, tokenizer: Any, want_logprobs: bool) -> dict[str, Any]:
    choices = []
    for c in gen.choices:
        logprobs = None
        if want_logprobs:
            tokens = [_token_text(tokenizer, tid) for tid, _, _ in c.logprobs]
            logprobs = completion_wire.completion_logprobs(
                tokens, [lp for _, lp, _ in c.logprobs],
                [[(_token_text(tokenizer, t), v) for t, v in top] for _, _, top in c.logprobs])
        choices.append({"text": c.text, "finish_reason": c.finish_reason, "logprobs": logprobs})
    return completion_wire.completion(gen.id, gen.created, gen.selection.model.id, choices,
                                      chat_wire.usage(gen.prompt_tokens, gen.completion_tokens))


async def collect(gen: Generation) -> None:
    """Wait for the whole answer; raises the engine's error as an APIError."""
    async for event in gen.events():
        if isinstance(event, ErrorEvent):
            raise api_error(event.error)


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def stream_chat(gen: Generation, tokenizer: Any, want_logprobs: bool, include_usage: bool) -> AsyncIterator[str]:
    model = gen.selection.model.id
    try:
        for index in range(len(gen.choices)):
            yield _sse(chat_wire.chat_chunk(gen.id, gen.created, model, index=index, content="", role=True))
        async for event in gen.events():
            if isinstance(event, TokenEvent):
                if not event.text and not want_logprobs:
                    continue
                logprobs = chat_logprobs(tokenizer, [(event.token_id, event.logprob, event.top_logprobs)]) \
                    if want_logprobs else None
                yield _sse(chat_wire.chat_chunk(gen.id, gen.created, model, index=event.index, content=event.text,
                                                logprobs=logprobs))
            elif isinstance(event, FinishEvent):
                yield _sse(chat_wire.chat_chunk(gen.id, gen.created, model, index=event.index,
                                                content=event.text or None, finish_reason=event.reason))
            elif isinstance(event, ErrorEvent):
                yield _sse(api_error(event.error).body())
                return
        if include_usage:
            yield _sse(chat_wire.chat_chunk(gen.id, gen.created, model,
                                            usage_=chat_wire.usage(gen.prompt_tokens, gen.completion_tokens)))
        yield "data: [DONE]\n\n"
    finally:
        if not gen.done:
            gen.abort()


async def stream_completion(gen: Generation, tokenizer: Any, want_logprobs: bool,
                            include_usage: bool) -> AsyncIterator[str]:
    model = gen.selection.model.id
    try:
        async for event in gen.events():
            if isinstance(event, TokenEvent):
                if not event.text and not want_logprobs:
                    continue
                logprobs = None
                if want_logprobs:
                    tops = [[(_token_text(tokenizer, t), v) for t, v in event.top_logprobs]]
                    logprobs = completion_wire.completion_logprobs([_token_text(tokenizer, event.token_id)],
                                                                   [event.logprob], tops)
                choice = {"index": event.index, "text": event.text, "finish_reason": None, "logprobs": logprobs}
                yield _sse(completion_wire.completion(gen.id, gen.created, model, [choice], None))
            elif isinstance(event, FinishEvent):
                choice = {"index": event.index, "text": event.text, "finish_reason": event.reason, "logprobs": None}
                yield _sse(completion_wire.completion(gen.id, gen.created, model, [choice], None))
            elif isinstance(event, ErrorEvent):
                yield _sse(api_error(event.error).body())
                return
        if include_usage:
            body = completion_wire.completion(gen.id, gen.created, model, [],
                                              chat_wire.usage(gen.prompt_tokens, gen.completion_tokens))
            yield _sse(body)
        yield "data: [DONE]\n\n"
    finally:
        if not gen.done:
            gen.abort()
