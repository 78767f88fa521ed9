"""The inference routes over a serving Engine: OpenAI's chat/completions/models, our feedback, metrics.

    router = build_inference_router(engine, authorize=None)
    app.include_router(router)

`authorize(request, resolved_model)` is called for every model a request touches (and every model
listed); it raises APIError(404) to hide a model from the caller. `tunewise serve` passes an API-key
check, the control plane its team check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tunewise.openai_api.chat import ChatCompletionRequest
from tunewise.openai_api.completions import CompletionRequest
from tunewise.openai_api.errors import APIError, not_found
from tunewise.openai_api.feedback import FeedbackRequest
from tunewise.openai_api.models import model_list
from tunewise.server.inference_bodies import (api_error, chat_body, collect, completion_body, stream_chat,
                                              stream_completion)
from tunewise.serve.errors import ServeError
from tunewise.serve.generation import Generation, Selection
from tunewise.serve.metrics import CONTENT_TYPE
from tunewise.serve.sampling import SamplingParams

Authorize = Callable[[Request, Any], None]


def _headers(selection: Selection) -> dict[str, str]:
    headers = {"x-tunewise-model": selection.model.id, "x-tunewise-model-version": selection.version_header}
    if selection.variant:
        headers["x-tunewise-variant"] = selection.variant
    return headers


def build_inference_router(engine: Any, *, authorize: Authorize | None = None) -> APIRouter:
    """The routes; every engine error becomes an OpenAI-style body with its status."""
    router = APIRouter()

    async def select(request: Request, model: str, user: str | None) -> Selection:
        selection = await asyncio.to_thread(engine.select, model, user)
        if authorize is not None:
            authorize(request, selection.model)
        return selection

    async def start(selection: Selection, prompt: Callable[[], list[int]], params: SamplingParams,
                    user: str | None, kind: str) -> Generation:
        loop = asyncio.get_running_loop()

        def begin() -> Generation:
            return engine.start(selection, prompt(), params, loop=loop, user=user, kind=kind)

        return await asyncio.to_thread(begin)

    async def answer(request: Request, body: Any, prompt: Callable[[Selection], list[int]], params: SamplingParams,
                     kind: str, streamer: Callable, builder: Callable) -> Response:
        """Start the generation; stream it as server-sent events or wait and send the whole body."""
        selection = await select(request, body.model, body.user)
        gen = await start(selection, lambda: prompt(selection), params, body.user, kind)
        tokenizer = engine.tokenizer(selection.model)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(streamer(gen, tokenizer, params.logprobs, include_usage),
                                     media_type="text/event-stream", headers=_headers(selection))
        await collect(gen)
        return JSONResponse(builder(gen, tokenizer, params.logprobs), headers=_headers(selection))

    @router.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        try:
            body.check()
            body.check_penalties()
            params = _params(body, max_tokens=body.max_completion_tokens or body.max_tokens,
                             logprobs=bool(body.logprobs), top=body.top_logprobs or 0, schema=body.json_schema())
            messages = [m.as_template_message() for m in body.messages]
            return await answer(request, body, lambda sel: engine.chat_prompt(sel.model, messages), params,
                                "chatcmpl", stream_chat, chat_body)
        except (ServeError, APIError) as err:
            raise api_error(err) from None

    @router.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        try:
            body.check()
            body.check_penalties()
            prompt = body.single_prompt()
            params = _params(body, max_tokens=body.max_tokens, logprobs=body.logprobs is not None,
                             top=body.logprobs or 0, schema=None)
            return await answer(request, body, lambda sel: engine.text_prompt(sel.model, prompt), params, "cmpl",
                                stream_completion, completion_body)
        except (ServeError, APIError) as err:
            raise api_error(err) from None

    @router.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        entries = await asyncio.to_thread(engine.list_models)
        return model_list([e for e in entries if await _visible(request, e["id"])])

    @router.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> dict[str, Any]:
        entries = await asyncio.to_thread(engine.list_models)
        for entry in entries:
            if entry["id"] == model_id and await _visible(request, model_id):
                return entry
        raise not_found(f"The model `{model_id}` does not exist or you do not have access to it.",
                        param="model", code="model_not_found")

    async def _visible(request: Request, model_id: str) -> bool:
        if authorize is None or model_id in engine.router.routes:
            return True
        try:
            await select(request, model_id, None)
        except (APIError, ServeError):
            return False
        return True

    @router.post("/v1/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
        try:
            answer = await asyncio.to_thread(engine.store.answer, body.response_id)
            if answer is None:  # answers are stored in the background: one rated as it ends may be on its way
                await asyncio.to_thread(engine.flush_records, 2.0)
                answer = await asyncio.to_thread(engine.store.answer, body.response_id)
            if answer is None:
                raise not_found(f"no answer with id {body.response_id!r}", param="response_id")
            if authorize is not None:
                await select(request, answer["model"], None)
            return await asyncio.to_thread(lambda: engine.store.record_feedback(
                body.response_id, score=body.score, thumbs=body.thumbs, text=body.text))
        except (ServeError, APIError) as err:
            raise api_error(err) from None

    @router.get("/metrics")
    async def metrics() -> Response:
        engine.backend.publish_queue_metrics()
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE)

    return router


def _params(body: Any, *, max_tokens: int | None, logprobs: bool, top: int, schema: dict | None) -> SamplingParams:
    try:
        return SamplingParams(max_tokens=max_tokens, temperature=1.0 if body.temperature is None else body.temperature,
                              top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed, stop=body.stop_list(),
                              logprobs=logprobs, top_logprobs=top, json_schema=schema, n=body.n or 1)
    except ServeError as err:
        raise api_error(err) from None

