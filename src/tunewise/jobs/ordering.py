"""Queue order: priority classes, FIFO within a class, and aging so that no job waits forever.

A job's rank is the index of its priority class on the ladder of classes, plus one for every
`aging_seconds` it has waited since it was submitted. Jobs run in rank order, the earliest
submitted first within a rank. A low-priority job that has waited long enough therefore ranks
above every newly submitted job, whatever its class: its wait is bounded. Aging changes only the
order of the queue; the right to preempt a running job comes from the class alone (preemption.py),
so an aged job never stops higher-class work and two jobs can never preempt each other in turn.
"""

from __future__ import annotations

import bisect
import math

from tunewise.jobs.schedule_types import ClusterState, SchedulerPolicy, WaitingJob


def class_ladder(state: ClusterState) -> tuple[int, ...]:
    """The priority classes, lowest first: the configured ones, else those present in the state."""
    if state.policy.priority_classes:
        return tuple(sorted(set(state.policy.priority_classes)))
    present = {job.priority for job in state.waiting} | {job.priority for job in state.running}
    return tuple(sorted(present))


def class_index(priority: int, ladder: tuple[int, ...]) -> int:
    """Position of the highest class at or below `priority` (0 below the lowest class)."""
    return max(bisect.bisect_right(ladder, priority) - 1, 0)


def aging_steps(job: WaitingJob, now: float, policy: SchedulerPolicy) -> int:
    if not policy.aging_seconds or policy.aging_seconds <= 0:
        return 0
    return max(0, math.floor((now - job.submitted_at) / policy.aging_seconds))


def rank(job: WaitingJob, now: float, policy: SchedulerPolicy, ladder: tuple[int, ...]) -> int:
    """Higher runs first: the job's class on the ladder plus its aging steps (0 with priorities off)."""
    if not policy.priorities:
        return 0
    return class_index(job.priority, ladder) + aging_steps(job, now, policy)


def queue_order(state: ClusterState) -> list[WaitingJob]:
    """Every waiting job in the order the scheduler considers them (all pools together).

    A job requeued after being preempted for another job comes right after that job while that
    job still waits, whatever their ranks: the room it gave up goes to the job it was stopped for,
    never back to itself (which would stop it again, and again).
    """
    ladder = class_ladder(state)
    ranked = sorted(state.waiting, key=lambda j: (-rank(j, state.now, state.policy, ladder), j.submitted_at, j.id))
    waiting = {job.id for job in ranked}
    behind: dict[str, list[WaitingJob]] = {}
    for job in ranked:
        if job.preempted_for in waiting and job.preempted_for != job.id:
            behind.setdefault(job.preempted_for, []).append(job)
    deferred = {job.id for jobs in behind.values() for job in jobs}
    order: list[WaitingJob] = []
    placed: set[str] = set()

    def append(job: WaitingJob) -> None:
        if job.id in placed:
            return
        placed.add(job.id)
        order.append(job)
        for follower in behind.get(job.id, ()):
            append(follower)

    for job in ranked:
        if job.id not in deferred:
            append(job)
    for job in ranked:  # only a cycle of preemptions could leave any behind
        append(job)
    return order
