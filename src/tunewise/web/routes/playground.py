"""The playground: one prompt to up to three models side by side (the base and one or two fine-tuned),
each answer streamed by `static/portal.js` from `/v1/chat/completions` (the OpenAI route, signed in with
the session cookie and CSRF token), with the version that served it; thumbs go to `/v1/feedback`.

Without JavaScript the same form posts here and the answers come back rendered (not streamed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.pages import CSRF_FIELD, Page, action, page, render

router = APIRouter()
COLUMNS = 3
DEFAULT_MAX_TOKENS = 64


def _choices(models: list[dict[str, Any]], wanted: list[str]) -> list[str]:
    """The model of each column: the first base model, then the models the link asked for."""
    base = next((m["id"] for m in models if m.get("kind") == "base"), "")
    picked = [base] + [w for w in wanted if w and w != base]
    return (picked + [""] * COLUMNS)[:COLUMNS]


async def _models(api: PortalAPI) -> list[dict[str, Any]] | None:
    """What the team may chat with; None where this server was built without serving (no /v1 chat)."""
    try:
        return (await api.get("/v1/models"))["data"]
    except APIFailure as failure:
        if failure.code == "unknown_url":
            return None
        raise


def _page(models: list[dict[str, Any]] | None, chosen: list[str], *, prompt: str = "", answers: list | None = None,
          max_tokens: int = DEFAULT_MAX_TOKENS, temperature: float = 0.7) -> Page:
    serving = models is not None
    models = models or []
    known = {m["id"] for m in models}
    # A model named by a link (a checkpoint, `name@production`) is offered even if the list omits it.
    extra = [{"id": c, "kind": "named"} for c in chosen if c and c not in known]
    data = {"serving": serving, "models": models + extra, "columns": chosen, "prompt": prompt, "answers": answers,
            "max_tokens": max_tokens, "temperature": temperature}
    return Page(data, title="Playground")


@page(router, "/playground", "playground.html")
async def playground(request: Request, api: PortalAPI) -> Page:
    models = await _models(api)
    return _page(models, _choices(models or [], request.query_params.getlist("model")))


async def _ask(api: PortalAPI, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """One column's answer without streaming: text, the serving version, the id that feedback names."""
    try:
        answer = await api.post("/v1/chat/completions", json={**body, "model": model})
    except APIFailure as failure:
        if failure.status == 401 or failure.code == "csrf_failed":
            raise
        return {"model": model, "error": failure.message}
    headers = api.last_response.headers if api.last_response is not None else {}
    return {"model": model, "id": answer["id"], "served": answer["model"],
            "version": headers.get("x-tunewise-model-version"), "content": answer["choices"][0]["message"]["content"]}


def _number(form: dict[str, Any], key: str, default: float, kind: type) -> Any:
    try:
        return kind(form.get(key) or default)
    except ValueError:
        return default


async def _answered(request: Request, api: PortalAPI) -> Page:
    form = dict(await request.form())
    asking = PortalAPI(request, csrf=str(form.get(CSRF_FIELD) or "") or None)
    chosen = [str(form.get(f"model_{i}") or "") for i in range(1, COLUMNS + 1)]
    prompt = str(form.get("prompt") or "")
    max_tokens = _number(form, "max_tokens", DEFAULT_MAX_TOKENS, int)
    temperature = _number(form, "temperature", 0.7, float)
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": temperature}
    answers = [await _ask(asking, model, body) if model and prompt else None for model in chosen]
    return _page(await _models(api), chosen, prompt=prompt, answers=answers, max_tokens=max_tokens,
                 temperature=temperature)


@router.post("/playground", include_in_schema=False)
async def ask_without_script(request: Request) -> Response:
    return await render(request, _answered, "playground.html", as_json=False)


@action(router, "/playground/feedback")
async def feedback(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    thumbs = str(form.get("thumbs") or "")
    await api.post("/v1/feedback", json={"response_id": str(form.get("response_id") or ""), "thumbs": thumbs})
    request.state.notice = f"Thanks: recorded thumbs {thumbs}"
    return "/playground"
