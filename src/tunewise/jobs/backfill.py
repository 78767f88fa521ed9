"""EASY-style backfill: the reservation of the first blocked job in a pool, and what may start around it.

The first job of a pool's queue that cannot start gets a reservation: the earliest time its demand
fits, found by releasing running jobs in the order of their estimated ends, and the placement it
would take then. A later job may start before it only if the reservation stays intact:

  - it fits on resources that are free now and that the reservation does not need, or
  - it is estimated to end before the reserved start.

A running job's end is `started_at + estimated_seconds / compute share` (a MIG slice runs a job at
its fraction of the card); a job past that is re-estimated to end within another quarter of its
estimate, counted from now; a job already stopping frees its resources now. A job without an
estimate is taken to hold its resources indefinitely. When no reservation can be computed (the
blocked job needs resources held by jobs without an estimate), nothing may start on any device
the blocked job could use, so a missing estimate never lets a later job delay it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.jobs.ledger import EPS, Ledger, PoolIndex
from tunewise.jobs.placement import FitMemo, devices_usable_by, place
from tunewise.jobs.schedule_types import Demand, Placement, RunningJob

OVERRUN_SHARE = 0.25  # a job past its estimate is re-estimated to end within another quarter of it
OVERRUN_MIN_SECONDS = 300.0


def estimated_end(job: RunningJob, index: PoolIndex, now: float, releasing: frozenset[str] = frozenset()) -> float | None:
    """When a running job should free its resources (None: unknown, it has no estimate)."""
    if job.stopping or job.id in releasing:
        return now
    seconds = job.demand.estimated_seconds
    if seconds is None:
        return None
    seconds /= index.compute_share(job.placement)
    end = job.started_at + seconds
    if end < now:  # past its estimate: expected to end within a further OVERRUN_SHARE of it, from now
        end = now + max(OVERRUN_SHARE * seconds, OVERRUN_MIN_SECONDS)
    return end


@dataclass
class Reservation:
    job_id: str
    start: float | None  # None: cannot be computed from the estimates
    placement: Placement | None
    after_start: Ledger  # free at `start` once the reserved job has its placement (minus jobs placed there since)

    def spare(self, now_free: Ledger) -> Ledger:
        """Free now and not needed by the reservation: where a later job may start at any length."""
        return now_free.intersect(self.after_start)


def reserve(job_id: str, demand: Demand, now_free: Ledger, running: list[RunningJob], now: float, *,
            share_gpus: bool, releasing: frozenset[str] = frozenset()) -> Reservation:
    """The blocked job's reservation in its pool (`running` are that pool's running jobs)."""
    index = now_free.index
    ends = []
    for job in running:
        end = estimated_end(job, index, now, releasing)
        if end is not None:
            ends.append((end, job.id, job))
    ends.sort(key=lambda e: (e[0], e[1]))
    ledger = now_free.copy()
    for i, (end, _id, job) in enumerate(ends):
        ledger.give(job.placement)
        if i + 1 < len(ends) and ends[i + 1][0] <= end:
            continue  # release every job ending at the same moment before trying
        placement = place(demand, ledger, share_gpus=share_gpus)
        if placement is not None:
            ledger.take(placement)
            return Reservation(job_id, end, placement, ledger)
    gpus, slices, cpu_nodes = devices_usable_by(demand, index)
    return Reservation(job_id, None, None, now_free.without(gpus, slices, cpu_nodes))


def backfill_placement(demand: Demand, reservation: Reservation, now_free: Ledger, now: float,
                       fit: FitMemo, spare: Ledger | None = None) -> tuple[Placement, bool] | None:
    """A placement that leaves the reservation intact, and whether it uses spare resources (True) or
    ends before the reserved start (False); None when the job would delay the reserved one.

    `spare` is `reservation.spare(now_free)` when the caller keeps it; `fit` places (and remembers misses).
    """
    pool = now_free.index.pool.name
    placement = fit.place(demand, spare if spare is not None else reservation.spare(now_free), ("spare", pool))
    if placement is not None:
        return placement, True
    if reservation.start is None or demand.estimated_seconds is None:
        return None
    placement = fit.place(demand, now_free, ("now", pool))
    if placement is None:
        return None
    end = now + demand.estimated_seconds / now_free.index.compute_share(placement)
    return (placement, False) if end <= reservation.start + EPS else None
