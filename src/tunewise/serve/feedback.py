"""What was answered and how it was received: one row per answer (with its variant), feedback rows.

SQLAlchemy over SQLite at `$TUNEWISE_HOME/serving.db` for a standalone `tunewise serve`; the control
plane passes its own database URL (PostgreSQL included). Users are stored as a sha256 prefix,
never as given: enough to count distinct users, not to recover them.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

from sqlalchemy import (Boolean, Column, Float, Integer, MetaData, String, Table, Text, create_engine, event, insert,
                        select)

from tunewise.serve.errors import InvalidRequest, UnknownModel

metadata = MetaData()

answers = Table(
    "serving_answers", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", Float, nullable=False, index=True),
    Column("requested", String(256), nullable=False),  # the name in the request
    Column("route", String(256), index=True),  # the A/B route, if any
    Column("variant", String(256)),
    Column("model", String(256), nullable=False),  # the id that answered
    Column("registered_name", String(256)),
    Column("version", String(32)),
    Column("user_hash", String(16)),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("ttft_s", Float),
    Column("latency_s", Float, nullable=False),
    Column("finish_reason", String(32)),
    Column("shadow_of", String(64), index=True),  # a shadow answer: the id of the answer that was returned
    Column("text", Text),  # kept for shadow answers and the answers they shadow, to compare them
)

feedback = Table(
    "serving_feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("response_id", String(64), nullable=False, index=True),
    Column("score", Float, nullable=False),
    Column("thumbs", Boolean),
    Column("text", Text),
    Column("created", Float, nullable=False),
)

MAX_FEEDBACK_TEXT = 4000


def default_url() -> str:
    from tunewise.workspace import home

    return f"sqlite:///{home() / 'serving.db'}"


def user_hash(user: str | None) -> str | None:
    return hashlib.sha256(user.encode()).hexdigest()[:16] if user else None


class ServingStore:
    """Answers and feedback in a SQL database (`url`: any SQLAlchemy URL; default the workspace's SQLite)."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        sqlite = self.url.startswith("sqlite")
        self.db = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.db, "connect", _sqlite_pragmas)
        metadata.create_all(self.db)
        self._lock = threading.Lock()  # SQLite takes one writer at a time; queueing here beats lock errors

    def record_answer(self, row: dict[str, Any]) -> None:
        row = {"created": time.time(), **row}
        with self._lock, self.db.begin() as conn:
            conn.execute(insert(answers).values(**row))

    def record_feedback(self, response_id: str, *, score: float | None = None, thumbs: str | None = None,
                        text: str | None = None) -> dict[str, Any]:
        """Store feedback on an answer; `thumbs` (up | down) counts as score 1 or 0."""
        if (score is None) == (thumbs is None):
            raise InvalidRequest("give exactly one of score (a number) and thumbs (up or down)", param="score")
        if thumbs is not None and thumbs not in ("up", "down"):
            raise InvalidRequest(f"thumbs: 'up' or 'down', got {thumbs!r}", param="thumbs")
        if score is not None and not math.isfinite(score):
            raise InvalidRequest("score: must be a finite number", param="score")
        if text is not None and len(text) > MAX_FEEDBACK_TEXT:
            raise InvalidRequest(f"text: at most {MAX_FEEDBACK_TEXT} characters", param="text")
        value = float(score) if score is not None else (1.0 if thumbs == "up" else 0.0)
        with self._lock, self.db.begin() as conn:
            found = conn.execute(select(answers.c.id).where(answers.c.id == response_id)).first()
            if found is None:
                raise UnknownModel(f"no answer with id {response_id!r}", param="response_id")
            conn.execute(insert(feedback).values(response_id=response_id, score=value,
                                                 thumbs=None if thumbs is None else thumbs == "up", text=text,
                                                 created=time.time()))
        return {"object": "feedback", "response_id": response_id, "score": value}

    def answer(self, response_id: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute(select(answers).where(answers.c.id == response_id)).mappings().first()
        return dict(row) if row else None

    def route_answers(self, route: str) -> list[dict[str, Any]]:
        """Every answer recorded for a route (shadow answers included), each with its feedback scores."""
        with self.db.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(answers).where(answers.c.route == route)).mappings()]
            ids = [r["id"] for r in rows]
            scores: dict[str, list[float]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for rid, score in conn.execute(select(feedback.c.response_id, feedback.c.score)
                                               .where(feedback.c.response_id.in_(chunk))):
                    scores.setdefault(rid, []).append(score)
        for row in rows:
            row["scores"] = scores.get(row["id"], [])
        return rows


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (ab report) do not block the server's writes
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
