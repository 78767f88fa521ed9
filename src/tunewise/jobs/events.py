"""A job's events, OpenAI's way: plain messages in order, plus `metrics` events per step."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.store.models import AuditEntry, JobEvent
from tunewise.jobs.store.pagination import Page, cursor_page


def add_event(session: Session, job_id: str, message: str, *, level: str = "info", type: str = "message",
              data: dict[str, Any] | None = None, at: float | None = None) -> JobEvent:
    row = JobEvent(id=ids.new_id(ids.EVENT), job_id=job_id, created_at=at or time.time(), level=level,
                   message=message, type=type, data=data)
    session.add(row)
    return row


def list_events(session: Session, job_id: str, *, after: str | None, limit: int) -> Page:
    """Newest first, as OpenAI lists them; `after` continues with older events."""
    return cursor_page(session, select(JobEvent).where(JobEvent.job_id == job_id), JobEvent, after=after, limit=limit)


def events_since(session: Session, job_id: str, seq: int, limit: int = 500) -> list[JobEvent]:
    """Events after `seq` in the order they happened (for live streams)."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > seq).order_by(JobEvent.seq).limit(limit)
    return list(session.scalars(stmt))


def audit(session: Session, *, team: str, key_id: str | None, action: str, object_id: str | None = None,
          detail: dict[str, Any] | None = None) -> None:
    """Record who did what (one row per state-changing request)."""
    session.add(AuditEntry(at=time.time(), team=team, key_id=key_id, action=action, object_id=object_id,
                           detail=detail))
