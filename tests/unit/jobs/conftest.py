"""The job store on SQLite and on a real PostgreSQL (a throwaway cluster for the whole session)."""

from __future__ import annotations

import itertools

import pytest

from tests.postgres_cluster import ThrowawayPostgres, available

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_cluster():
    reason = available()
    if reason:
        pytest.skip(f"PostgreSQL store tests skipped: {reason}")
    with ThrowawayPostgres() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tunewise.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"tunewise_{next(_names)}")


@pytest.fixture
def db(store_url):
    from tunewise.jobs.store.db import Database

    database = Database(store_url)
    yield database
    database.close()
