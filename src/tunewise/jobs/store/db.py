"""Opening the job store: SQLite in the workspace by default, PostgreSQL for shared deployments.

SQLite runs in WAL mode with a busy timeout, so concurrent requests read while one writes and
writers queue instead of failing; foreign keys are enforced. The schema is brought up to date
with Alembic at every open, so a new version of tunewise migrates an old store on its first start.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tunewise.errors import TunewiseError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()


class StoreError(TunewiseError):
    """The job store cannot be opened or migrated."""


def default_url(home: Path) -> str:
    return f"sqlite:///{home / 'tunewise.db'}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.close()


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    """An engine for `url` with the settings each backend needs under concurrent requests."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               pool_size=pool_size, max_overflow=pool_size)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic `upgrade head`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with _migrate_lock, engine.begin() as connection:
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, "head")
        except Exception as err:  # a database that cannot be reached or written
            raise StoreError(f"cannot migrate the job store at {engine.url.render_as_string()}: {err}") from err


class Database:
    """The engine and a session factory; `session()` is a unit of work committed on success."""

    def __init__(self, url: str, *, run_migrations: bool = True, pool_size: int = 20):
        self.url = url
        try:
            self.engine = make_engine(url, pool_size=pool_size)
        except Exception as err:
            raise StoreError(f"cannot open the job store {url!r}: {err}") from err
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()
