"""The server's loop: validate new jobs, follow running ones, schedule, carry out the decisions.

One `tick()` does a full round; `start()` runs ticks on a background thread every `tick_s` seconds
(and at once after `wake()`). Every change to a job's state happens under `state_lock`, which the
API's actions (cancel, pause, resume) take too, so the loop never writes over a cancel. The store
is the only state: a restarted server picks up where the last one stopped; a job whose process is
still alive is followed again, one whose process is gone is retried from its last checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from sqlalchemy import select

from tunewise.jobs import lifecycle
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.cluster import (
    clear_wait,
    cluster_state,
    demand_to_json,
    describe_placement,
    placement_from_json,
    placement_to_json,
    store_wait,
)
from tunewise.jobs.events import add_event
from tunewise.jobs.files import stored_paths
from tunewise.jobs.executors.base import Executor, Launch, Poll, WaitForCapacity, attempt_started
from tunewise.jobs.policy import SchedulingPolicy
from tunewise.jobs.progress import sync_progress
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.db import Database
from tunewise.jobs.store.models import Job, JobEvent
from tunewise.jobs.validation import MIN_EXAMPLES, check_job_data

log = logging.getLogger("tunewise.jobs")
state_lock = threading.RLock()
SideWork = Callable[[], None]
CAPACITY_RETRY_S = 5.0  # a job the executor's cluster cannot hold is offered to it again after this


class Controller:
    def __init__(self, db: Database, settings: JobSettings, blobs: BlobStore, executor: Executor,
                 policy: SchedulingPolicy, *, notify: lifecycle.Notify | None = None, tick_s: float = 1.0,
                 min_examples: int = MIN_EXAMPLES, side_work: list[SideWork] | None = None):
        self.db = db
        self.settings = settings
        self.blobs = blobs
        self.executor = executor
        self.policy = policy
        self.notify = notify
        self.tick_s = tick_s
        self.min_examples = min_examples
        self.side_work = side_work or []
        self._validating: set[str] = set()
        self._validator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewise-validate")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tunewise-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._validator.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive any one bad tick
                log.exception("scheduling tick failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def tick(self) -> None:
        self.start_validations()
        self.reconcile()
        self.schedule()
        for work in self.side_work:
            try:
                work()
            except Exception:
                log.exception("background work %s failed", getattr(work, "__name__", work))

    # -- validating_files -> queued ---------------------------------------------------------------

    def start_validations(self) -> None:
        with self.db.session() as session:
            pending = list(session.scalars(select(Job.id).where(Job.status == "validating_files")))
        for job_id in pending:
            if job_id not in self._validating:
                self._validating.add(job_id)
                self._validator.submit(self._validate, job_id)

    def _validate(self, job_id: str) -> None:
        try:
            with self.db.session() as session:
                job = session.scalar(select(Job).where(Job.id == job_id))
                spec, labels = dict(job.spec), self._file_labels(session, job)
            try:
                check = check_job_data(spec, job_id, labels, min_examples=self.min_examples)
                demand = demand_to_json(self.policy.demand(spec, job.pool, tokens=check.tokens,
                                                           examples=check.examples)) if check.ok else None
            except Exception as err:  # a model that cannot load, a planner refusal: the job fails, not the loop
                log.exception("validating %s failed", job_id)
                check, demand = None, None
                error = str(err).splitlines()[0] if str(err) else type(err).__name__
            with state_lock, self.db.session() as session:
                job = session.scalar(select(Job).where(Job.id == job_id))
                if job.status != "validating_files":
                    return  # cancelled meanwhile
                if check is None:
                    lifecycle.fail(session, job, "invalid_job", f"The job cannot run: {error}", notify=self.notify)
                elif not check.ok:
                    lifecycle.fail(session, job, check.code, check.message, param=check.param, notify=self.notify)
                else:
                    job.demand = demand
                    job.status = "queued"
                    job.queued_at = time.time()
                    add_event(session, job.id, "Files validated, moving job to queued state",
                              data={"examples": check.examples, "tokens": check.tokens})
        finally:
            self._validating.discard(job_id)
            self.wake()

    def _file_labels(self, session, job: Job) -> dict[str, tuple[str, str]]:
        """Stored path -> (file id, file name), so messages name files as the client knows them."""
        rows = stored_paths(session, self.blobs, self.settings.scratch / "files", [v for v in _file_ids(job) if v])
        return {path: (row.id, row.filename) for path, row in rows.items()}

    # -- running jobs -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Follow every started attempt: running jobs, and queued ones a cluster has yet to admit."""
        with self.db.session() as session:
            started = [job.id for job in session.scalars(select(Job).where(Job.status.in_(("running", "queued"))))
                       if _followed(job)]
        for job_id in started:
            with state_lock, self.db.session() as session:
                job = session.scalar(select(Job).where(Job.id == job_id))
                if not _followed(job):
                    continue
                poll = self.executor.poll(job.handle) if attempt_started(job.handle) else Poll("gone")
                if poll.state == "waiting":
                    lifecycle.waiting_for_admission(session, job, poll.reason or "not admitted yet")
                    self._enforce_stop_grace(job)
                elif poll.state == "running":
                    lifecycle.admitted(session, job)
                    sync_progress(session, self.settings, job)
                    self._enforce_stop_grace(job)
                else:
                    lifecycle.on_exit(session, self.settings, self.blobs, job, poll, self.notify)

    def _enforce_stop_grace(self, job: Job) -> None:
        asked = (job.handle or {}).get("stop_requested_at")
        if job.stop_requested and asked and time.time() - asked > self.settings.stop_grace_s:
            log.warning("%s did not stop within %.0f s of being asked; killing it", job.id, self.settings.stop_grace_s)
            self.executor.cancel(job.handle)

    def ask_to_stop(self, job: Job, kind: str, detail: str) -> None:
        """Preempt or pause: SIGTERM, so the job checkpoints and exits (caller holds state_lock)."""
        job.stop_requested = kind
        job.stop_detail = detail
        job.handle = {**(job.handle or {}), "stop_requested_at": time.time()}
        if attempt_started(job.handle):
            self.executor.stop(job.handle)

    # -- scheduling ---------------------------------------------------------------------------------

    def schedule(self) -> None:
        with state_lock, self.db.session() as session:
            state = cluster_state(session, self.policy.pools, self.policy.quotas)
            if not state.waiting:
                return
            decisions = self.policy.schedule(state)
            jobs = {j.id: j for j in session.scalars(select(Job).where(
                Job.id.in_([w.id for w in state.waiting] + [r.id for r in state.running])))}
            for preempt in decisions.preempt:
                job = jobs.get(preempt.job_id)
                if job is not None and job.status == "running" and not job.stop_requested:
                    detail = getattr(preempt, "detail", "") or f"{preempt.reason}, for {preempt.for_job}"
                    self.ask_to_stop(job, "preempt", f"preempted: {detail}")
                    job.preempted_for = preempt.for_job
                    add_event(session, job.id, f"Preempted ({detail}): the job writes a checkpoint, stops, and "
                                               "will resume from it", level="warn")
            for wait in decisions.wait:
                if wait.job_id in jobs:
                    store_wait(jobs[wait.job_id], wait)
            for admit in decisions.admit:
                job = jobs.get(admit.job_id)
                if job is not None and job.status == "queued":
                    self._start(session, job, admit.placement, admit.borrowed)

    def _start(self, session, job: Job, placement, borrowed: bool) -> None:
        job_dir = self.settings.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        spec_path = job_dir / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(job.spec, sort_keys=False))
        launch = Launch(job_id=job.id, spec_path=spec_path, run_dir=self.settings.run_dir(job.id),
                        log_path=job_dir / "train.log", placement=placement,
                        env={"TUNEWISE_HOME": str(self.settings.home)})
        try:
            handle = self.executor.start(launch)
        except WaitForCapacity as wait:
            self._wait_for_capacity(session, job, wait.detail)
            return
        except Exception as err:
            log.exception("starting %s failed", job.id)
            lifecycle.fail(session, job, "executor_error", f"The job could not be started: {err}", notify=self.notify)
            return
        first = job.attempts == 0
        job.status = "running"
        job.handle = {**handle, "start_step": job.step or 0}
        job.placement = placement_to_json(placement)
        job.borrowed = borrowed
        job.attempts += 1
        job.not_before = None
        job.preempted_for = None
        job.started_at = job.started_at or time.time()
        clear_wait(job)
        where = describe_placement(placement_from_json(job.placement))
        if first:
            add_event(session, job.id, "Fine-tuning job started", data={"placement": where, "borrowed": borrowed})
        else:
            add_event(session, job.id, f"Fine-tuning job resumed on {where} from step {job.step or 0}",
                      data={"placement": where, "attempt": job.attempts})

    def _wait_for_capacity(self, session, job: Job, detail: str) -> None:
        """The executor's cluster cannot hold the job: it stays queued with the reason (said once: the
        scheduler's own reasons, a busy pool, may come and go in between)."""
        message = f"Waiting: {detail}"
        last = session.scalar(select(JobEvent.message).where(JobEvent.job_id == job.id, JobEvent.type == "message")
                              .order_by(JobEvent.seq.desc()).limit(1))
        if last != message:
            add_event(session, job.id, message, level="warn")
        job.wait_reason = "capacity"
        job.wait_detail = detail
        job.not_before = time.time() + CAPACITY_RETRY_S  # meanwhile the pool's slots go to jobs that fit


def _followed(job: Job) -> bool:
    """A running job, or a queued one whose attempt waits in a cluster's queue: the loop polls both."""
    return job.status == "running" or (job.status == "queued" and attempt_started(job.handle))


def _file_ids(job: Job) -> list[Any]:
    return [job.training_file, job.validation_file, *(job.files or [])]
