"""API keys per team: random, shown once, stored as an argon2 hash; an admin key sees every team.

A key is `twk_` plus 40 random letters and digits. The store keeps its first characters (to find
the row, and to tell keys apart in `tunewise keys list`) and an argon2id hash (a slow hash: a
leaked database does not give the keys away). Verifying argon2 takes tens of milliseconds and
tens of MiB, so a key verified once is remembered in this process by its SHA-256, and its row is
read again at most every REVOCATION_CHECK_S: a revocation through this server applies at once, one
made by another process (`tunewise keys revoke`) within two seconds.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.errors import TunewiseError
from tunewise.jobs import ids
from tunewise.jobs.store.models import ApiKey, Team

KEY_PREFIX = "twk_"
_SHOWN_PREFIX = len(KEY_PREFIX) + 8
TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ADMIN_TEAM = "admin"
_hasher = PasswordHasher()


class ApiKeyError(TunewiseError):
    """A team or key argument is invalid."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    team: str
    key_id: str
    is_admin: bool = False

    def scope(self) -> str | None:
        """The team whose objects this caller sees; None for the admin (every team)."""
        return None if self.is_admin else self.team


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once, never stored
    id: str
    team: str
    is_admin: bool


def check_team_name(team: str) -> str:
    if not TEAM_NAME.match(team or ""):
        raise ApiKeyError(f"team {team!r}: use 1-40 lowercase letters, digits, '_' or '-', starting with a letter "
                        "or digit (it appears in fine-tuned model names)")
    return team


def ensure_team(session: Session, team: str) -> None:
    if session.scalar(select(Team.seq).where(Team.name == team)) is None:
        session.add(Team(name=team, created_at=time.time()))
        session.flush()


def create_key(session: Session, team: str, *, name: str | None = None, admin: bool = False) -> CreatedKey:
    """A new random key for `team` (the admin team when `admin`); the plain key is only in the result."""
    team = ADMIN_TEAM if admin else check_team_name(team)
    ensure_team(session, team)
    plain = KEY_PREFIX + ids.random_token(40)
    row = ApiKey(id=ids.new_id(ids.KEY, 16), team=team, name=name, prefix=plain[:_SHOWN_PREFIX],
                 hash=_hasher.hash(plain), is_admin=admin, created_at=time.time())
    session.add(row)
    session.flush()
    return CreatedKey(key=plain, id=row.id, team=team, is_admin=admin)


def list_keys(session: Session, team: str | None = None) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.seq)
    if team is not None:
        stmt = stmt.where(ApiKey.team == team)
    return list(session.scalars(stmt))


def revoke_key(session: Session, key_id_or_prefix: str) -> ApiKey:
    """Revoke by key id (`key_...`) or by the shown prefix (`twk_abcd1234`)."""
    row = session.scalar(select(ApiKey).where((ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix)))
    if row is None:
        raise ApiKeyError(f"no API key {key_id_or_prefix!r}", hint="`tunewise keys list` shows key ids and prefixes")
    if row.revoked_at is None:
        row.revoked_at = time.time()
    _verified.forget(row.id)
    return row


def has_admin_key(session: Session) -> bool:
    return session.scalar(select(ApiKey.seq).where(ApiKey.is_admin, ApiKey.revoked_at.is_(None)).limit(1)) is not None


REVOCATION_CHECK_S = 2.0  # a key revoked by another process stops working within this long


class _VerifiedKeys:
    """SHA-256 of keys this process has verified with argon2 -> (principal, when its row was last read).

    The key itself is never kept. Within REVOCATION_CHECK_S of the last read the principal is
    answered without the store; after it, the key's row is read again (revoked -> refused).
    """

    def __init__(self):
        self._by_digest: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._verifying: dict[str, threading.Lock] = {}

    def single_flight(self, digest: str) -> threading.Lock:
        """One lock per presented key: many requests arriving with a new key run argon2 once, not each."""
        with self._lock:
            return self._verifying.setdefault(digest, threading.Lock())

    def done(self, digest: str) -> None:
        with self._lock:
            self._verifying.pop(digest, None)

    def get(self, digest: str) -> tuple[Principal, float] | None:
        with self._lock:
            return self._by_digest.get(digest)

    def put(self, digest: str, who: Principal) -> None:
        with self._lock:
            if len(self._by_digest) > 10_000:
                self._by_digest.clear()
            self._by_digest[digest] = (who, time.monotonic())

    def forget(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (who, _) in self._by_digest.items() if who.key_id == key_id]:
                del self._by_digest[digest]


_verified = _VerifiedKeys()


def _digest(plain: str) -> str | None:
    if not plain.startswith(KEY_PREFIX) or len(plain) > 200:
        return None
    return hashlib.sha256(plain.encode()).hexdigest()


def recently_verified(plain: str) -> Principal | None:
    """The principal of a key checked against the store within REVOCATION_CHECK_S; None otherwise."""
    digest = _digest(plain)
    hit = _verified.get(digest) if digest else None
    if hit is not None and time.monotonic() - hit[1] < REVOCATION_CHECK_S:
        return hit[0]
    return None


def authenticate(session: Session, plain: str) -> Principal | None:
    """The principal for a presented key, or None for an unknown, wrong or revoked one."""
    digest = _digest(plain)
    if digest is None:
        return None
    if _verified.get(digest) is None:
        with _verified.single_flight(digest):
            if _verified.get(digest) is None:
                found = _verify(session, plain, digest)
                _verified.done(digest)
                return found
    who, _ = _verified.get(digest) or (None, 0.0)
    row = session.scalar(select(ApiKey).where(ApiKey.id == who.key_id)) if who else None
    if row is None or row.revoked_at is not None:
        if who is not None:
            _verified.forget(who.key_id)
        return None
    fresh = _principal(row)
    _verified.put(digest, fresh)
    return fresh


def _verify(session: Session, plain: str, digest: str) -> Principal | None:
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == plain[:_SHOWN_PREFIX])):
        if row.revoked_at is None and _matches(row.hash, plain):
            who = _principal(row)
            _verified.put(digest, who)
            row.last_used_at = time.time()
            return who
    return None


def _matches(stored_hash: str, plain: str) -> bool:
    try:
        return _hasher.verify(stored_hash, plain)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _principal(row: ApiKey) -> Principal:
    return Principal(team=row.team, key_id=row.id, is_admin=row.is_admin)
