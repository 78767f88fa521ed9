"""Cursor pages as OpenAI lists them: newest first, `after=<id>` continues past that object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tunewise.openai_api.errors import bad_request

MAX_LIMIT = 10_000


@dataclass
class Page:
    items: list[Any]
    has_more: bool


def cursor_page(session: Session, stmt: Select, model: Any, *, after: str | None, limit: int,
                newest_first: bool = True) -> Page:
    """Run `stmt` (already filtered to what the caller may see) one page at a time by `seq`.

    `after` must be the id of an object in the same listing; another team's id is unknown here.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", param="limit")
    if after is not None:
        cursor = session.scalar(stmt.with_only_columns(model.seq).where(model.id == after))
        if cursor is None:
            raise bad_request(f"after: no object with id {after!r} in this list", param="after")
        stmt = stmt.where(model.seq < cursor if newest_first else model.seq > cursor)
    stmt = stmt.order_by(model.seq.desc() if newest_first else model.seq.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    return Page(rows[:limit], len(rows) > limit)


def owned(model: Any, team: str | None) -> Select:
    """SELECT of `model` rows one team may see; `team=None` is the admin, who sees every team's."""
    stmt = select(model)
    return stmt if team is None else stmt.where(model.team == team)
