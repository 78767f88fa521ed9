"""Bearer API keys: every route but the health check needs one; the key decides the team."""

from __future__ import annotations

from fastapi import Depends, Request

from tunewise.jobs.keys import Principal, authenticate, recently_verified
from tunewise.openai_api.errors import APIError, unauthorized
from tunewise.server.context import ServerContext, context


def principal(request: Request, ctx: ServerContext = Depends(context)) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 in OpenAI's shape otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    who = recently_verified(token.strip())
    if who is None:
        with ctx.session() as session:
            who = authenticate(session, token.strip())
    if who is None:
        raise unauthorized("Incorrect API key provided, or the key was revoked")
    request.state.principal = who
    return who


def admin(who: Principal = Depends(principal)) -> Principal:
    if not who.is_admin:
        raise APIError(403, "this route needs the admin key", code="permission_denied")
    return who
