"""Estimated start times: the same policy run forward on the running jobs' estimated ends.

From the decisions of this pass, the first `estimate_depth` waiting jobs of each pool are carried
forward on a virtual clock: at each estimated end the finished job's resources come back and the
scheduler decides again (no preemption, no new arrivals). A job's estimated start is the virtual
time it is admitted; None when it is not admitted before the known ends run out (a job without an
estimate holds its resources for good). Estimates only inform; they never change a decision.
"""

from __future__ import annotations

from dataclasses import replace

from tunewise.jobs.admission import decide
from tunewise.jobs.backfill import estimated_end
from tunewise.jobs.ledger import PoolIndex
from tunewise.jobs.schedule_types import ClusterState, Decisions, RunningJob, WaitingJob


def with_estimates(state: ClusterState, decisions: Decisions) -> Decisions:
    """`decisions` with `estimated_start` filled in for the first `estimate_depth` waiting jobs per pool."""
    depth = state.policy.estimate_depth
    tracked = {w.job_id for w in decisions.wait if w.position <= depth}
    if not tracked:
        return decisions
    waiting = {job.id: job for job in state.waiting}
    preempted = {p.job_id for p in decisions.preempt}
    running = [replace(job, stopping=True) if job.id in preempted else job
               for job in sorted(state.running, key=lambda j: j.id)]
    for admit in decisions.admit:
        job = waiting[admit.job_id]
        running.append(_started(job, admit.placement, state.now))
    starts = _run_forward(state, running, [waiting[w.job_id] for w in decisions.wait if w.job_id in tracked])
    return replace(decisions, wait=tuple(
        replace(w, estimated_start=starts.get(w.job_id, w.estimated_start)) if w.job_id in tracked else w
        for w in decisions.wait))


def _started(job: WaitingJob, placement, at: float) -> RunningJob:
    return RunningJob(job.id, job.team, job.pool, job.priority, at, job.demand, placement, job.preemptible)


def _run_forward(state: ClusterState, running: list[RunningJob], pending: list[WaitingJob]) -> dict[str, float]:
    policy = replace(state.policy, preemption=False, estimate_depth=0)
    indexes = {pool.name: PoolIndex(pool) for pool in state.pools}
    by_id = {job.id: job for job in pending}
    starts: dict[str, float] = {}
    now = state.now
    # Each round either admits a job or retires at least one running job, so this ends.
    for _ in range(len(running) + len(pending) + 1):
        virtual = ClusterState(state.pools, tuple(running), tuple(pending), state.quotas, now, policy)
        for admit in decide(virtual).admit:
            starts[admit.job_id] = now
            running.append(_started(by_id[admit.job_id], admit.placement, now))
        pending = [job for job in pending if job.id not in starts]
        ends = {job.id: estimated_end(job, indexes[job.pool], now) for job in running if job.pool in indexes}
        known = [end for end in ends.values() if end is not None]
        if not pending or not known:
            break
        now = max(now, min(known))
        running = [job for job in running if ends.get(job.id) is None or ends[job.id] > now]
    return starts
