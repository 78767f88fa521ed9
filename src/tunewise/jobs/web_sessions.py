"""Browser sessions: an API key is exchanged once for a random session token held in a cookie.

The cookie never carries the key: it carries 32 random bytes, and the store keeps only their
SHA-256, with the key's team and a CSRF token. A session ends when it expires, when its owner signs
out, or when the key it was opened with is revoked (checked on every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tunewise.jobs.keys import Principal
from tunewise.jobs.store.models import ApiKey, WebSession

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 100  # a longer cookie is not one of ours: refused without a lookup


@dataclass(frozen=True)
class OpenedSession:
    token: str  # goes into the cookie, never stored
    csrf: str
    expires_at: float


@dataclass(frozen=True)
class SessionInfo:
    principal: Principal
    csrf: str
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, who: Principal, *, ttl_s: float) -> OpenedSession:
    """A new session for an authenticated key; expired sessions are swept on the way."""
    now = time.time()
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(24)
    session.add(WebSession(token_hash=_digest(token), key_id=who.key_id, team=who.team, is_admin=who.is_admin,
                           csrf=csrf, created_at=now, expires_at=now + ttl_s))
    session.flush()
    return OpenedSession(token=token, csrf=csrf, expires_at=now + ttl_s)


def find_session(session: Session, token: str) -> SessionInfo | None:
    """The live session a cookie names, or None (unknown, expired, or its key revoked)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _digest(token)))
    if row is None or row.expires_at < time.time():
        return None
    revoked = session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == row.key_id))
    if revoked is not None:
        return None
    return SessionInfo(Principal(team=row.team, key_id=row.key_id, is_admin=row.is_admin), row.csrf, row.expires_at)


def close_session(session: Session, token: str) -> bool:
    """Sign out: the session row is deleted, so the cookie is worthless even if it was copied."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return False
    return session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token))).rowcount > 0


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), presented.encode())
