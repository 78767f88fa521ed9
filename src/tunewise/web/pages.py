"""Pages and their JSON twins, actions (form posts), and what every page shares.

Every page is one function `async def view(request, api) -> Page` registered twice: at its path (HTML,
or JSON for `Accept: application/json`) and at the same path with `.json` (the data the page shows). A page's data is what the REST
API answered; the page adds only presentation (charts, layout). Actions are form posts: they forward
the form's CSRF token to the API with the change and redirect back (POST/redirect/GET), carrying a
one-line notice or the API's refusal in a short-lived flash cookie.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tunewise.web import formatting
from tunewise.web.api import APIFailure, PortalAPI

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
formatting.install(TEMPLATES.env)
FLASH_COOKIE = "tunewise_flash"
CSRF_FIELD = "csrf_token"


@dataclass
class Page:
    data: dict[str, Any]  # the JSON twin: what the API answered, as the page shows it
    view: dict[str, Any] = field(default_factory=dict)  # presentation only (SVG charts, form state)
    status: int = 200
    title: str = ""


View = Callable[[Request, PortalAPI], Awaitable[Page]]
Action = Callable[[Request, PortalAPI, dict[str, Any]], Awaitable[str]]


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target inside this site only (no scheme, no host, no `//`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


def page(router: APIRouter, path: str, template: str, *, json_path: str | None = None) -> Callable[[View], View]:
    """Register `view` at `path` (HTML) and at `json_path` (default `path + '.json'`)."""

    def decorate(view: View) -> View:
        async def as_html(request: Request) -> Response:
            return await render(request, view, template, as_json=wants_json(request))

        async def as_json(request: Request) -> Response:
            return await render(request, view, template, as_json=True)

        # The twin first: `/jobs/{job_id}` would otherwise take `x.json` as a job id.
        router.add_api_route(json_path or f"{path}.json", as_json, methods=["GET"], include_in_schema=False)
        router.add_api_route(path, as_html, methods=["GET"], include_in_schema=False)
        return view

    return decorate


def wants_json(request: Request) -> bool:
    """A client that asks for JSON and not HTML (`Accept: application/json`) gets the page's twin."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def action(router: APIRouter, path: str) -> Callable[[Action], Action]:
    """Register a form post at `path`: `fn(request, api, form) -> where to go next`."""

    def decorate(fn: Action) -> Action:
        async def handle(request: Request) -> Response:
            form = dict(await request.form())
            api = PortalAPI(request, csrf=str(form.get(CSRF_FIELD) or "") or None)
            back = _back(request)
            try:
                target = await fn(request, api, form)
            except APIFailure as failure:
                if failure.status == 401:
                    return signin_redirect(request, back)
                if failure.code == "csrf_failed":
                    return error_page(request, 403, "This form has expired or came from another site. Reload the "
                                      "page and try again.")
                return flash_redirect(back if not failure.status == 404 else "/", failure.message, "error")
            notice = getattr(request.state, "notice", None)
            return flash_redirect(target, notice, "notice") if notice else RedirectResponse(target, status_code=303)

        router.add_api_route(path, handle, methods=["POST"], include_in_schema=False)
        return fn

    return decorate


def _back(request: Request) -> str:
    """The page a form was posted from (its path and query), for redirecting back after an error."""
    referer = urlsplit(request.headers.get("referer") or "")
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/"
    return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), "/")


async def render(request: Request, view: View, template: str, *, as_json: bool) -> Response:
    api = PortalAPI(request)
    try:
        me = await api.get("/api/session")
    except APIFailure as failure:
        if as_json:
            return JSONResponse({"error": {"message": failure.message, "code": failure.code}}, failure.status)
        return signin_redirect(request, request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    # Pages read with GET, but some reads are POSTs that change nothing (the planner, the dry run): they
    # carry the session's own CSRF token like any other call from this browser.
    api.csrf = me.get("csrf_token")
    try:
        result = await view(request, api)
    except APIFailure as failure:
        if as_json:
            return JSONResponse({"error": {"message": failure.message, "param": failure.param, "code": failure.code}},
                                failure.status)
        return error_page(request, failure.status, failure.message, me=me)
    if as_json:
        return JSONResponse(json.loads(json.dumps(result.data, default=str)), result.status)
    return html(request, template, result, me=me)


def html(request: Request, template: str, result: Page, *, me: dict[str, Any] | None) -> Response:
    flash = _read_flash(request)
    context = {"me": me, "data": result.data, "title": result.title, "flash": flash,
               "csrf": (me or {}).get("csrf_token") or "", "json_url": _json_url(request), **result.view}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=result.status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def _json_url(request: Request) -> str:
    path = request.url.path.rstrip("/") or "/index"
    return path + ".json" + (f"?{request.url.query}" if request.url.query else "")


def error_page(request: Request, status: int, message: str, *, me: dict[str, Any] | None = None) -> Response:
    titles = {401: "Signed out", 403: "Not allowed", 404: "Not found", 409: "Not now", 413: "Too large"}
    result = Page({"error": {"status": status, "message": message}}, status=status,
                  title=titles.get(status, "Something went wrong" if status >= 500 else "Request refused"))
    return html(request, "error.html", result, me=me)


def signin_redirect(request: Request, next_path: str) -> Response:
    return RedirectResponse(f"/signin?next={quote(safe_next(next_path), safe='/')}", status_code=303)


def flash_redirect(target: str, message: str | None, kind: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    if message:
        value = base64.urlsafe_b64encode(json.dumps({"kind": kind, "message": message[:1500]}).encode()).decode()
        response.set_cookie(FLASH_COOKIE, value, max_age=120, httponly=True, samesite="lax", path="/")
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        flash = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return {"kind": str(flash.get("kind", "notice")), "message": str(flash.get("message", ""))}
    except (ValueError, AttributeError, TypeError):
        return None


def new_token() -> str:
    return secrets.token_urlsafe(24)
