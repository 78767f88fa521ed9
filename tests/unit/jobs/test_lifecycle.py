"""What the loop does when a job's training process ends, read from its run directory: succeed, fail
with the reason, pause, requeue after a preemption, retry a crash with backoff, then give up."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from tunewise.jobs import lifecycle
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.executors.base import Poll
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.db import Database
from tunewise.jobs.store.models import File, Job, JobEvent


@pytest.fixture
def setup(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    settings = JobSettings(home=tmp_path, max_retries=2, retry_backoff_s=10.0)
    yield db, settings, BlobStore(tmp_path / "files")
    db.close()


def _job(db, settings, status_json: dict, **fields) -> str:
    job = Job(id="ftjob-life0000000000000000", team="team-a", status="running", model="tiny", seed=1,
              spec={"name": "ftjob-life0000000000000000", "method": {"name": "lora"}, "train": {"epochs": 1}},
              model_token="abcd1234", created_at=time.time(), started_at=time.time(), suffix="s",
              handle={"pid": 1}, placement={"slots": []}, attempts=1, **fields)
    run_dir = settings.run_dir(job.id)
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps(status_json))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train_loss": 2.0 - s / 10}) + "\n"
                                                   for s in (1, 2)))
    with db.session() as session:
        session.add(job)
    return job.id


def _settle(db, settings, blobs, job_id, poll, notified=None):
    with db.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        lifecycle.on_exit(session, settings, blobs, job, poll,
                          (lambda s, event, j: notified.append(event)) if notified is not None else None)
    with db.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        events = [e.message for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                                     .order_by(JobEvent.seq))]
        return job, events


def test_a_completed_run_succeeds_with_model_results_and_events(setup):
    db, settings, blobs = setup
    job_id = _job(db, settings, {"state": "completed", "step": 2, "total_steps": 2, "tokens_seen": 321})
    notified = []
    job, events = _settle(db, settings, blobs, job_id, Poll("exited", 0), notified)
    assert job.status == "succeeded" and job.fine_tuned_model == "ft:tiny:team-a:s:abcd1234"
    assert job.trained_tokens == 321 and job.placement is None and notified == ["fine_tuning.job.succeeded"]
    assert events[-2:] == ["New fine-tuned model created: ft:tiny:team-a:s:abcd1234", "The job has successfully completed"]
    with db.session() as session:
        results = session.scalar(select(File).where(File.id == job.result_files[0]))
        assert results.purpose == "fine-tune-results" and results.team == "team-a"


def test_a_process_gone_while_no_server_ran_is_retried_then_given_up(setup):
    db, settings, blobs = setup
    job_id = _job(db, settings, {"state": "running", "step": 2})
    job, events = _settle(db, settings, blobs, job_id, Poll("gone"))
    assert job.status == "queued" and job.failures == 1 and job.not_before > time.time() + 5
    assert "ended unexpectedly (the process disappeared); retrying from the last checkpoint (retry 1 of 2) in 10 s" \
        in events[-1]
    for expected_status in ("queued", "failed"):
        with db.session() as session:
            session.scalar(select(Job).where(Job.id == job_id)).status = "running"
        job, events = _settle(db, settings, blobs, job_id, Poll("exited", -9))
        assert job.status == expected_status
    assert job.error["code"] == "training_process_failed" and "3 times" in job.error["message"]


def test_a_user_error_fails_at_once_with_its_reason(setup):
    db, settings, blobs = setup
    job_id = _job(db, settings, {"state": "failed", "error": "data.train: no usable rows"})
    job, _ = _settle(db, settings, blobs, job_id, Poll("exited", 2))
    assert job.status == "failed" and job.failures == 0
    assert job.error == {"code": "training_error", "message": "Training failed: data.train: no usable rows",
                         "param": None}


def test_a_pause_and_a_preemption_stop_without_counting_a_failure(setup):
    db, settings, blobs = setup
    job_id = _job(db, settings, {"state": "stopped", "step": 2}, stop_requested="pause", step=2)
    job, events = _settle(db, settings, blobs, job_id, Poll("exited", 3))
    assert job.status == "paused" and events[-1].startswith("Fine-tuning job paused at step 2")
    with db.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        job.status, job.stop_requested, job.preempted_for = "running", "preempt", "ftjob-high"
    # A job that had to be killed after the grace period is requeued all the same (its checkpoint stands).
    job, events = _settle(db, settings, blobs, job_id, Poll("exited", -9))
    assert job.status == "queued" and job.failures == 0 and job.preempted_for == "ftjob-high"
    assert events[-1].startswith("Job stopped at step 2")


def test_a_failed_gate_fails_the_job_naming_the_criteria(setup):
    db, settings, blobs = setup
    job_id = _job(db, settings, {"state": "completed", "step": 2})
    (settings.run_dir(job_id) / "gate.json").write_text(json.dumps({"passed": False, "criteria": [
        {"key": "heldout.loss", "value": 3.1, "threshold": "<= 2.0", "passed": False}]}))
    job, _ = _settle(db, settings, blobs, job_id, Poll("exited", 1))
    assert job.status == "failed" and job.error["code"] == "gate_failed"
    assert "heldout.loss=3.1 (needs <= 2.0)" in job.error["message"]
