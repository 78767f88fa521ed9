"""What every route needs, built once per app: the store, the settings, files, the loop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.controller import Controller, state_lock
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.db import Database
from tunewise.jobs.submit import JobFactory
from tunewise.server.config import ServerConfig


@dataclass
class ServerContext:
    config: ServerConfig
    db: Database
    settings: JobSettings
    blobs: BlobStore
    factory: JobFactory
    controller: Controller
    extras: dict[str, Any]  # mounted parts (serving engine, trigger runner) by name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.session() as session:
            yield session

    @contextmanager
    def locked_session(self) -> Iterator[Session]:
        """A unit of work that changes job state: serialised with the scheduling loop."""
        with state_lock, self.db.session() as session:
            yield session


def context(request: Request) -> ServerContext:
    return request.app.state.ctx
