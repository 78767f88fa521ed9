"""A job's state changes, each with OpenAI's events: running, requeued, succeeded, failed, cancelled,
and, for a job handed to a cluster, queued until the cluster's own queue admits it.

The loop calls `on_exit` when a job's process has ended; what the process did is read from its run
directory: completed (the job succeeded, or failed its gate), stopped on request (requeued after a
preemption, paused after a pause), a user error (failed with the reason, never retried) or a
crash (retried from the last checkpoint with backoff, then failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.events import add_event
from tunewise.jobs.executors.base import Poll
from tunewise.jobs.openai_request import resolved_hyperparameters
from tunewise.jobs.progress import results_csv, sync_progress
from tunewise.jobs.rundirs import final_run_dir, read_json
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.models import Job
from tunewise.jobs.submit import fine_tuned_model_id

Notify = Callable[[Session, str, Job], None]  # (session, "fine_tuning.job.succeeded", job)
EXIT_USER_ERROR = 2
EXIT_STOPPED = 3


def _release(job: Job) -> None:
    job.placement = None
    job.borrowed = False
    job.stop_requested = None
    job.stop_detail = None
    job.estimated_finish = None


def _final(session: Session, job: Job, status: str, notify: Notify | None) -> None:
    job.status = status
    job.finished_at = time.time()
    job.queue_position = job.wait_reason = job.wait_detail = None
    _release(job)
    if notify is not None:
        notify(session, f"fine_tuning.job.{status}", job)


def fail(session: Session, job: Job, code: str, message: str, *, param: str | None = None,
         notify: Notify | None = None) -> None:
    job.error = {"code": code, "message": message, "param": param}
    add_event(session, job.id, message, level="error")
    _final(session, job, "failed", notify)


def cancel(session: Session, job: Job, notify: Notify | None = None) -> None:
    add_event(session, job.id, "Fine-tuning job cancelled")
    _final(session, job, "cancelled", notify)


def requeue(session: Session, job: Job, message: str, *, not_before: float | None = None) -> None:
    """Back to the queue; the next start resumes from the newest checkpoint."""
    job.status = "queued"
    job.not_before = not_before
    job.handle = None
    _release(job)
    add_event(session, job.id, message)


def waiting_for_admission(session: Session, job: Job, reason: str) -> None:
    """A started attempt that the cluster's queue (Kueue, Volcano) holds back: the job shows as queued."""
    if job.status == "queued" and job.wait_detail == reason:
        return
    job.status = "queued"
    job.queue_position = None
    job.wait_reason = "admission"
    job.wait_detail = reason
    add_event(session, job.id, f"Waiting for the cluster to admit the job: {reason}")


def admitted(session: Session, job: Job) -> None:
    """The cluster admitted a waiting attempt: its pods run."""
    if job.status != "queued":
        return
    job.status = "running"
    job.queue_position = job.wait_reason = job.wait_detail = job.estimated_start = None
    add_event(session, job.id, "The cluster admitted the job; its training pods are running")


def succeed(session: Session, settings: JobSettings, blobs: BlobStore, job: Job, notify: Notify | None) -> None:
    from tunewise.jobs.files import results_file

    sync_progress(session, settings, job)
    run_dir = final_run_dir(settings, job.id, job.spec)
    status = read_json(run_dir / "status.json")
    job.fine_tuned_model = fine_tuned_model_id(job)
    job.trained_tokens = status.get("tokens_seen")
    job.hyperparameters = resolved_hyperparameters(job.spec, read_json(run_dir / "batch_plan.json") or None,
                                                   _default_lr(job.spec))
    job.result_files = [results_file(session, blobs, team=job.team, job_id=job.id, csv_text=results_csv(run_dir)).id]
    add_event(session, job.id, f"New fine-tuned model created: {job.fine_tuned_model}")
    add_event(session, job.id, "The job has successfully completed")
    _final(session, job, "succeeded", notify)


def _default_lr(spec: dict[str, Any]) -> float:
    from tunewise.methods import get_method

    method = spec.get("method") or {}
    return get_method(method.get("name", "lora") if isinstance(method, dict) else method).default_learning_rate


def gate_failure(run_dir) -> str | None:
    """Why the run's evaluation gate failed, or None when it passed (or there was no gate)."""
    gate = read_json(run_dir / "gate.json")
    if not gate or gate.get("passed") is not False:
        return None
    failed = [c for c in gate.get("criteria") or [] if not c.get("passed")]
    detail = "; ".join(f"{c.get('key')}={c.get('value')} (needs {c.get('threshold')})" for c in failed)
    return "The model trained but did not pass its evaluation gate" + (f": {detail}" if detail else "")


def on_exit(session: Session, settings: JobSettings, blobs: BlobStore, job: Job, poll: Poll,
            notify: Notify | None = None) -> None:
    """Settle a job whose training process has ended (`poll.state` exited or gone)."""
    sync_progress(session, settings, job)
    run_dir = final_run_dir(settings, job.id, job.spec)
    status = read_json(run_dir / "status.json")
    code = poll.exit_code
    if job.stop_requested == "cancel":
        cancel(session, job, notify)
    elif status.get("state") == "completed" and code in (0, 1, None):
        failed_gate = gate_failure(run_dir)
        if failed_gate:
            fail(session, job, "gate_failed", failed_gate, notify=notify)
        else:
            succeed(session, settings, blobs, job, notify)
    elif code == EXIT_STOPPED or job.stop_requested in ("preempt", "pause") or (code is None and _stopped(settings, job)):
        _stopped_on_request(session, job, notify)
    elif code == EXIT_USER_ERROR or (code is None and _active_state(settings, job) == "failed"):
        reason = _active_status(settings, job).get("error") or "training failed"
        fail(session, job, "training_error", f"Training failed: {reason}", notify=notify)
    elif poll.state == "failed":  # the cluster already restarted it as often as it was allowed to
        fail(session, job, "training_process_failed", f"The job failed on the cluster: {poll.reason or 'no reason given'}",
             notify=notify)
    else:
        _crashed(session, settings, job, code, notify)


def _active_status(settings: JobSettings, job: Job) -> dict[str, Any]:
    from tunewise.jobs.rundirs import active_run_dir

    return read_json(active_run_dir(settings, job.id, job.spec) / "status.json")


def _active_state(settings: JobSettings, job: Job) -> str | None:
    return _active_status(settings, job).get("state")


def _stopped(settings: JobSettings, job: Job) -> bool:
    return _active_state(settings, job) == "stopped"


def _stopped_on_request(session: Session, job: Job, notify: Notify | None) -> None:
    step = job.step or 0
    if job.stop_requested == "pause":
        job.status = "paused"
        job.handle = None
        _release(job)
        add_event(session, job.id, f"Fine-tuning job paused at step {step}; resume continues from there")
        return
    detail = job.stop_detail or "preempted"
    preempted_for = job.preempted_for
    requeue(session, job, f"Job stopped at step {step} ({detail}); it is queued again and will resume from "
                          f"step {step}")
    job.preempted_for = preempted_for  # it queues behind the job it made room for


def _crashed(session: Session, settings: JobSettings, job: Job, code: int | None, notify: Notify | None) -> None:
    how = f"signal {-code}" if code is not None and code < 0 else (f"exit status {code}" if code is not None
                                                                  else "the process disappeared")
    job.failures = (job.failures or 0) + 1
    if job.failures > settings.max_retries:
        reason = _active_status(settings, job).get("error")
        fail(session, job, "training_process_failed",
             f"The training process ended unexpectedly ({how}) {job.failures} times; giving up"
             + (f". Last error: {reason}" if reason else ""), notify=notify)
        return
    delay = settings.retry_backoff_s * 2 ** (job.failures - 1)
    requeue(session, job, f"The training process ended unexpectedly ({how}); retrying from the last checkpoint "
                          f"(retry {job.failures} of {settings.max_retries}) in {delay:.0f} s",
            not_before=time.time() + delay)
