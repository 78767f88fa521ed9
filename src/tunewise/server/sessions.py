"""`/api/session`: exchange an API key for a browser session (the portal's sign-in), read it, end it.

The session token travels only in the `tunewise_session` cookie (HttpOnly, SameSite=Lax, Secure
over https); the body carries the CSRF token that state-changing cookie requests must send back.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from tunewise.jobs.events import audit
from tunewise.jobs.keys import Principal
from tunewise.jobs.web_sessions import close_session, open_session
from tunewise.openai_api.errors import bad_request
from tunewise.server.auth import SESSION_COOKIE, principal, session_info
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/api", tags=["tunewise"])


class SessionView(BaseModel):
    object: str = "tunewise.session"
    team: str
    is_admin: bool
    csrf_token: str | None = None
    expires_at: float | None = None


def set_session_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_s, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https")


@router.post("/session", response_model=SessionView, summary="Sign in: a browser session for this API key (cookie)")
def create_session(request: Request, response: Response, who: Principal = Depends(principal),
                   ctx: ServerContext = Depends(context)) -> SessionView:
    if not request.headers.get("authorization"):
        raise bad_request("a session is opened with an API key: send 'Authorization: Bearer <key>'",
                          param="authorization")
    ttl_s = ctx.config.portal.session_hours * 3600
    with ctx.session() as session:
        opened = open_session(session, who, ttl_s=ttl_s)
        audit(session, team=who.team, key_id=who.key_id, action="session.open", object_id=None)
    set_session_cookie(response, request, opened.token, int(ttl_s))
    return SessionView(team=who.team, is_admin=who.is_admin, csrf_token=opened.csrf, expires_at=opened.expires_at)


@router.get("/session", response_model=SessionView, summary="This session (or key): team, admin, CSRF token")
def read_session(request: Request, who: Principal = Depends(principal),
                 ctx: ServerContext = Depends(context)) -> SessionView:
    info = session_info(request, ctx) if not request.headers.get("authorization") else None
    return SessionView(team=who.team, is_admin=who.is_admin, csrf_token=info.csrf if info else None,
                       expires_at=info.expires_at if info else None)


@router.delete("/session", summary="Sign out: the session ends at once, everywhere its cookie was copied")
def delete_session(request: Request, response: Response, who: Principal = Depends(principal),
                   ctx: ServerContext = Depends(context)) -> dict:
    token = request.cookies.get(SESSION_COOKIE, "") if not request.headers.get("authorization") else ""
    with ctx.session() as session:
        closed = close_session(session, token)
        if closed:
            audit(session, team=who.team, key_id=who.key_id, action="session.close", object_id=None)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return {"object": "tunewise.session", "deleted": closed}
