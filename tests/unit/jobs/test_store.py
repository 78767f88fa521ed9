"""The job store on SQLite and PostgreSQL: migrations, ownership, cursor pages, JSON filters, keys,
and concurrent writers."""

from __future__ import annotations

import io
import threading

import pytest
from sqlalchemy import select, text

from tunewise.jobs import keys
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.events import add_event, list_events
from tunewise.jobs.files import create_file, get_file, list_files
from tunewise.jobs.native import NativeJobRequest, native_submission
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.db import Database
from tunewise.jobs.store.models import Job
from tunewise.jobs.submit import JobFactory
from tunewise.openai_api.errors import APIError

ROWS = b"".join(b'{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a"}]}\n' % i
                for i in range(12))


def test_migrations_bring_a_new_store_to_head_and_are_idempotent(db, store_url):
    from alembic.script import ScriptDirectory

    from tunewise.jobs.store.db import _MIGRATIONS

    with db.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    Database(store_url).close()  # opening again migrates nothing and fails nothing


def _file(db, tmp_path, team="team-a", name="train.jsonl"):
    blobs = BlobStore(tmp_path / "files")
    with db.session() as session:
        return create_file(session, blobs, tmp_path / "scratch", team=team, filename=name, purpose="fine-tune",
                           stream=io.BytesIO(ROWS)).id


def test_files_belong_to_their_team_and_page_newest_first(db, tmp_path):
    made = [_file(db, tmp_path, name=f"f{i}.jsonl") for i in range(5)]
    other = _file(db, tmp_path, team="team-b")
    with db.session() as session:
        first = list_files(session, "team-a", after=None, limit=2)
        assert [f.id for f in first.items] == [made[4], made[3]] and first.has_more
        rest = list_files(session, "team-a", after=made[3], limit=10)
        assert [f.id for f in rest.items] == [made[2], made[1], made[0]] and not rest.has_more
        with pytest.raises(APIError) as err:
            get_file(session, other, "team-a")
        assert err.value.status == 404
        with pytest.raises(APIError):
            list_files(session, "team-a", after=other, limit=2)  # another team's id is no cursor here
        assert len(list_files(session, None, after=None, limit=100).items) == 6  # the admin sees all
        report = get_file(session, made[0], "team-a").report
        assert report["rows_kept"] == 12 and report["format"] == "chat"


def test_jobs_filter_by_metadata_and_events_page(db, tmp_path):
    file_id = _file(db, tmp_path)
    settings = JobSettings(home=tmp_path, models={"tiny": "/models/tiny"})
    factory = JobFactory(settings, BlobStore(tmp_path / "files"))
    who = keys.Principal(team="team-a", key_id="k")
    ids = []
    with db.session() as session:
        for ticket in ("T-1", "T-2", None):
            request = NativeJobRequest(model="tiny", spec={"data": {"train": file_id}, "train": {"max_steps": 1}},
                                       metadata={"ticket": ticket} if ticket else None)
            ids.append(factory.create_job(session, native_submission(request, who, settings.models), key_id="k").id)
    from tunewise.jobs.actions import list_jobs

    with db.session() as session:
        assert [j.id for j in list_jobs(session, "team-a", after=None, limit=10, metadata={"ticket": "T-2"}).items] == [ids[1]]
        assert [j.id for j in list_jobs(session, "team-a", after=None, limit=10, metadata_null=True).items] == [ids[2]]
        assert list_jobs(session, "team-b", after=None, limit=10).items == []
        job = session.scalar(select(Job).where(Job.id == ids[0]))
        assert job.spec["data"]["train"].endswith(".jsonl") and job.files == [file_id]
        for i in range(5):
            add_event(session, job.id, f"event {i}")
    with db.session() as session:
        page = list_events(session, ids[0], after=None, limit=3)
        messages = [e.message for e in page.items]
        assert messages == ["event 4", "event 3", "event 2"] and page.has_more


def test_keys_authenticate_until_revoked(db):
    with db.session() as session:
        made = keys.create_key(session, "team-a", name="ci")
        admin = keys.create_key(session, "", admin=True)
    with db.session() as session:
        assert keys.authenticate(session, made.key).team == "team-a"
        assert keys.authenticate(session, admin.key).is_admin
        assert keys.authenticate(session, made.key[:-1] + "x") is None
        keys.revoke_key(session, made.id)
    with db.session() as session:
        assert keys.authenticate(session, made.key) is None
    with pytest.raises(keys.ApiKeyError):
        keys.check_team_name("Team A")


def test_concurrent_writers_do_not_fail(db, tmp_path):
    """Many threads writing at once (SQLite: WAL and a busy timeout; PostgreSQL: row locks)."""
    file_id = _file(db, tmp_path)
    settings = JobSettings(home=tmp_path, models={"tiny": "/models/tiny"})
    factory = JobFactory(settings, BlobStore(tmp_path / "files"))
    who = keys.Principal(team="team-a", key_id="k")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(5):
                with db.session() as session:
                    request = NativeJobRequest(model="tiny", spec={"data": {"train": file_id}})
                    job = factory.create_job(session, native_submission(request, who, settings.models), key_id="k")
                    add_event(session, job.id, f"from thread {n}")
        except BaseException as err:  # noqa: BLE001 - the assertion reports it
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as session:
        assert len(list(session.scalars(select(Job.id)))) == 40


def test_files_on_an_fsspec_store_are_fetched_for_training(db, tmp_path):
    """files_url may be any fsspec URL (s3://, gs://): training reads a local copy."""
    import uuid

    blobs = BlobStore(f"memory://tunewise-files-{uuid.uuid4().hex}")
    assert not blobs.is_local
    with db.session() as session:
        row = create_file(session, blobs, tmp_path / "scratch", team="team-a", filename="t.jsonl", purpose="fine-tune",
                          stream=io.BytesIO(ROWS))
        assert row.status == "processed" and blobs.exists(row.storage_key)
        local = blobs.local_path(row.storage_key, tmp_path / "copies")
        assert local.read_bytes() == ROWS and local.parent == tmp_path / "copies"


def test_a_revocation_by_another_process_applies_within_the_check_interval(db, monkeypatch):
    from sqlalchemy import update

    from tunewise.jobs.store.models import ApiKey

    with db.session() as session:
        made = keys.create_key(session, "team-a")
    with db.session() as session:
        assert keys.authenticate(session, made.key).team == "team-a"
        session.execute(update(ApiKey).where(ApiKey.id == made.id).values(revoked_at=1.0))  # as `keys revoke` would
    assert keys.recently_verified(made.key) is not None  # remembered for a moment...
    monkeypatch.setattr(keys, "REVOCATION_CHECK_S", 0.0)
    assert keys.recently_verified(made.key) is None  # ...then the row is read again
    with db.session() as session:
        assert keys.authenticate(session, made.key) is None


def test_listing_jobs_walks_an_index_on_both_stores(db):
    """A page of jobs, first or deep behind an `after` cursor, reads through (team, seq) and the id's
    unique index: never a scan of the table or a sort, however many jobs the store holds."""
    from sqlalchemy import insert

    from tests.store_plans import finished_job_rows, full_scans, listing_plans

    rows = finished_job_rows(4000, ("team-a", "team-b", "team-c", "team-d"))
    with db.session() as session:
        session.execute(insert(Job), rows)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # the planner's statistics, as a store in use has them
    deep = [r["id"] for r in rows if r["team"] == "team-a"][50]
    for after in (None, deep):
        plans = listing_plans(db, "team-a", after)
        assert len(plans) == (1 if after is None else 2)
        assert not [line for plan in plans for line in full_scans(plan)], plans
