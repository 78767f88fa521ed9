"""Who a request acts as: a Bearer API key, or the portal's session cookie; every route but the health
check needs one of them.

A cookie-authenticated request that changes state (anything but GET, HEAD, OPTIONS) must also carry
the session's CSRF token in `x-csrf-token`: a page on another site can make the browser send the
cookie, but it cannot read the token. Bearer requests need no token (no browser adds that header).
"""

from __future__ import annotations

from fastapi import Depends, Request

from tunewise.jobs.keys import Principal, authenticate, recently_verified
from tunewise.jobs.web_sessions import SessionInfo, csrf_matches, find_session
from tunewise.openai_api.errors import APIError, unauthorized
from tunewise.server.context import ServerContext, context

SESSION_COOKIE = "tunewise_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal(request: Request, ctx: ServerContext = Depends(context)) -> Principal:
    """The caller, from `Authorization: Bearer <key>` or the session cookie; 401 in OpenAI's shape otherwise."""
    header = request.headers.get("authorization", "")
    if not header and request.cookies.get(SESSION_COOKIE):
        who = _from_session(request, ctx).principal
    else:
        who = _from_key(header, ctx)
    request.state.principal = who
    return who


def _from_key(header: str, ctx: ServerContext) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    who = recently_verified(token.strip())
    if who is None:
        with ctx.session() as session:
            who = authenticate(session, token.strip())
    if who is None:
        raise unauthorized("Incorrect API key provided, or the key was revoked")
    return who


def _from_session(request: Request, ctx: ServerContext) -> SessionInfo:
    info = session_info(request, ctx)
    if info is None:
        raise unauthorized("your session has ended (expired, signed out, or its key revoked): sign in again")
    if request.method not in SAFE_METHODS and not csrf_matches(info.csrf, request.headers.get(CSRF_HEADER)):
        raise APIError(403, f"a request signed in with the session cookie must carry the session's CSRF token in "
                       f"{CSRF_HEADER}", code="csrf_failed")
    return info


def session_info(request: Request, ctx: ServerContext) -> SessionInfo | None:
    """The live session of the request's cookie, if any (read once per request)."""
    if not hasattr(request.state, "session_info"):
        token = request.cookies.get(SESSION_COOKIE, "")
        with ctx.session() as session:
            request.state.session_info = find_session(session, token) if token else None
    return request.state.session_info


def actor(who: Principal) -> str:
    """Who the registry's history names for a change made through the API: the team and its key."""
    return f"team {who.team or 'admin'} (key {who.key_id})"


def admin(who: Principal = Depends(principal)) -> Principal:
    if not who.is_admin:
        raise APIError(403, "this route needs the admin key", code="permission_denied")
    return who
