"""Sign in (an API key for a session cookie) and sign out.

The sign-in form is protected by a double-submit token: a random value in a short-lived
SameSite=Strict cookie that the form must echo, so another site cannot sign a browser in as its own
team. The key goes to `POST /api/session` once; only the session cookie comes back to the browser.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tunewise.jobs.web_sessions import csrf_matches
from tunewise.server.auth import SESSION_COOKIE
from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.pages import CSRF_FIELD, TEMPLATES, new_token, safe_next

router = APIRouter()
SIGNIN_COOKIE = "tunewise_signin"


def _form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(SIGNIN_COOKIE) or new_token()
    hours = request.app.state.ctx.config.portal.session_hours
    context = {"me": None, "csrf": "", "title": "Sign in", "flash": None, "json_url": "/signin.json",
               "data": {}, "signin_csrf": token, "next": safe_next(request.query_params.get("next")),
               "error": error, "hours": f"{hours:g}"}
    response = TEMPLATES.TemplateResponse(request, "signin.html", context, status_code=status)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/signin",
                        secure=request.url.scheme == "https")
    return response


@router.get("/signin", include_in_schema=False)
async def signin_page(request: Request) -> Response:
    return _form(request)


@router.get("/signin.json", include_in_schema=False)
async def signin_twin(request: Request) -> Response:
    hours = request.app.state.ctx.config.portal.session_hours
    return JSONResponse({"signin": {"form": "POST /signin with api_key and csrf_token",
                                    "api": "POST /api/session with Authorization: Bearer <key>",
                                    "session_hours": hours}})


@router.post("/signin", include_in_schema=False)
async def signin(request: Request) -> Response:
    form = await request.form()
    if not csrf_matches(request.cookies.get(SIGNIN_COOKIE, ""), str(form.get(CSRF_FIELD) or "")):
        return _form(request, error="The sign-in form expired; please try again.", status=403)
    key = str(form.get("api_key") or "").strip()
    if not key:
        return _form(request, error="Enter your API key.", status=400)
    api = PortalAPI(request, bearer=key)
    try:
        await api.post("/api/session")
    except APIFailure as failure:
        message = "That key is not valid, or it was revoked." if failure.status == 401 else failure.message
        return _form(request, error=message, status=failure.status)
    token = api.last_response.cookies.get(SESSION_COOKIE)
    max_age = int(request.app.state.ctx.config.portal.session_hours * 3600)
    response = RedirectResponse(safe_next(str(form.get("next") or "/")), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout", include_in_schema=False)
async def signout(request: Request) -> Response:
    form = await request.form()
    api = PortalAPI(request, csrf=str(form.get(CSRF_FIELD) or "") or None)
    try:
        await api.send("DELETE", "/api/session")
    except APIFailure as failure:
        if failure.code == "csrf_failed":
            return RedirectResponse("/", status_code=303)  # a forged sign-out form: nothing happens
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
