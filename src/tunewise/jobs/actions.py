"""What a client may do to a job: find it, list, cancel, pause, resume, change its priority.

Each action runs under the loop's state lock (the caller's `locked_session`), so it never races a
scheduling decision. Cancel works in every state and frees the job's devices at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tunewise.jobs import lifecycle
from tunewise.jobs.events import add_event
from tunewise.jobs.executors.base import attempt_started
from tunewise.jobs.store.models import Job
from tunewise.jobs.store.pagination import Page, cursor_page, owned
from tunewise.openai_api.errors import bad_request, conflict, not_found
from tunewise.openai_api.fine_tuning import FINAL_STATUSES


def get_job(session: Session, job_id: str, scope: str | None) -> Job:
    job = session.scalar(owned(Job, scope).where(Job.id == job_id))
    if job is None:
        raise not_found(f"Could not find fine-tune: {job_id}", param="fine_tuning_job_id", code="fine_tune_not_found")
    return job


def list_jobs(session: Session, scope: str | None, *, after: str | None, limit: int,
              metadata: dict[str, str] | None = None, metadata_null: bool = False, status: str | None = None) -> Page:
    stmt = owned(Job, scope)
    if metadata_null:
        stmt = stmt.where(Job.job_metadata.is_(None))
    for key, value in (metadata or {}).items():
        stmt = stmt.where(Job.job_metadata[key].as_string() == value)
    if status:
        stmt = stmt.where(Job.status == status)
    return cursor_page(session, stmt, Job, after=after, limit=limit)


def cancel_job(session: Session, job: Job, executor: Any, notify: lifecycle.Notify | None) -> Job:
    if job.status in FINAL_STATUSES:
        raise conflict(f"Job {job.id} has already {job.status}; only unfinished jobs can be cancelled",
                       param="fine_tuning_job_id", code="job_already_finished")
    if job.status in ("running", "queued") and attempt_started(job.handle):  # queued: a cluster has it, unadmitted
        job.stop_requested = "cancel"
        executor.cancel(job.handle)
    lifecycle.cancel(session, job, notify)
    return job


def pause_job(session: Session, job: Job, controller: Any) -> Job:
    """A running job checkpoints and stops (then `paused`); a queued one is paused at once."""
    if job.status == "queued" and not attempt_started(job.handle):
        job.status = "paused"
        add_event(session, job.id, "Fine-tuning job paused before it started")
        return job
    if job.status not in ("running", "queued"):
        raise conflict(f"Job {job.id} is {job.status}; only queued or running jobs can be paused",
                       param="fine_tuning_job_id", code="job_not_pausable")
    if job.stop_requested == "pause":
        return job
    if job.stop_requested:
        raise conflict(f"Job {job.id} is already stopping ({job.stop_requested})", param="fine_tuning_job_id",
                       code="job_stopping")
    controller.ask_to_stop(job, "pause", "paused on request")
    add_event(session, job.id, "Pausing: the job writes a checkpoint and stops")
    return job


def resume_job(session: Session, job: Job) -> Job:
    if job.status != "paused":
        raise conflict(f"Job {job.id} is {job.status}; only paused jobs can be resumed", param="fine_tuning_job_id",
                       code="job_not_paused")
    job.status = "queued"
    job.not_before = None
    add_event(session, job.id, f"Fine-tuning job resumed: queued to continue from step {job.step or 0}")
    return job


def set_priority(session: Session, job: Job, priority_class: str, classes: dict[str, int]) -> Job:
    if priority_class not in classes:
        raise bad_request(f"priority: class {priority_class!r} is not defined; classes: {', '.join(classes)}",
                          param="priority")
    if job.status in FINAL_STATUSES:
        raise conflict(f"Job {job.id} has already {job.status}", param="fine_tuning_job_id", code="job_already_finished")
    job.priority_class = priority_class
    job.priority = classes[priority_class]
    add_event(session, job.id, f"Priority changed to {priority_class}")
    return job
