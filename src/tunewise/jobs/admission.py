"""One scheduling pass: every waiting job, in queue order, is admitted, makes room by preemption, or waits.

For each job, in rank order over all pools (ordering.py):
  1. a job no pool could ever hold waits with reason `capacity`;
  2. it is placed on what is free now; once its pool has a blocked job, only where that job's
     reservation stays intact (backfill.py);
  3. placed, it must fit its team's quota, borrowing idle quota if allowed (quotas.py), without
     delaying the team's first job waiting for the team's own quota, else it waits (`quota`);
  4. not placed, the pool's first blocked job gets a reservation and, when it would otherwise wait
     long, preempts the fewest jobs it may stop (preemption.py); later jobs wait with the reason
     that stops them (`memory`, `gang`, `priority`, `capacity`).
Nothing here reads a clock or touches the outside world: `state.now` is the time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tunewise.jobs.backfill import Reservation, backfill_placement, estimated_end, reserve
from tunewise.jobs.explain import describe_demand, describe_free, describe_pool
from tunewise.jobs.ledger import Ledger, PoolIndex
from tunewise.jobs.ordering import class_ladder, queue_order, rank
from tunewise.jobs.placement import FitMemo, demand_problem
from tunewise.jobs.preemption import candidates, choose_victims
from tunewise.jobs.quotas import (
    QuotaBook,
    QuotaReservation,
    QuotaVerdict,
    Usage,
    demand_usage,
    placement_usage,
    reserve_quota,
)
from tunewise.jobs.schedule_types import (
    Admit,
    ClusterState,
    Decisions,
    Demand,
    Placement,
    Preempt,
    RunningJob,
    Wait,
    WaitingJob,
    WaitReason,
)


def decide(state: ClusterState) -> Decisions:
    """Admit, preempt and wait decisions for `state` (no estimated starts beyond the first in line)."""
    return _Pass(state).run()


def shape_reason(demand: Demand) -> WaitReason:
    """Why a job that fits its quota but not the free devices waits: a gang, memory, or CPU capacity."""
    if demand.gpus > 1:
        return "gang"
    return "memory" if demand.gpus == 1 else "capacity"


@dataclass
class _Head:
    job: WaitingJob
    reservation: Reservation
    spare: Ledger | None = None  # reservation.spare(free now), kept until the next admission in the pool


class _Pass:
    def __init__(self, state: ClusterState) -> None:
        self.state, self.policy, self.now = state, state.policy, state.now
        self.indexes = {pool.name: PoolIndex(pool) for pool in state.pools}
        self.free: dict[str, Ledger] = {name: index.empty_ledger() for name, index in self.indexes.items()}
        self.empty = {name: index.empty_ledger() for name, index in self.indexes.items()}
        self.running: dict[str, list[RunningJob]] = {name: [] for name in self.indexes}
        running = tuple(sorted(state.running, key=lambda j: j.id))  # the order given must not matter
        for job in running:
            if job.pool in self.free:
                self.free[job.pool].take(job.placement)
                self.running[job.pool].append(job)
        self.quotas = QuotaBook(state.quotas, self.indexes, running)
        self.releasing = frozenset(job.id for job in state.running if job.stopping)
        self.heads: dict[str, _Head] = {}
        self.team_holds: dict[str, QuotaReservation] = {}  # team -> its first job waiting for the team's quota
        self.borrow_hold: str | None = None  # the aged job idle quota is kept for
        self.admits: list[Admit] = []
        self.preempts: list[Preempt] = []
        self.waits: dict[str, tuple[WaitReason, str, float | None]] = {}
        self.fit = FitMemo(state.policy.share_gpus)

    def run(self) -> Decisions:
        order = queue_order(self.state)
        self.ladder = class_ladder(self.state)
        self.ranks = {job.id: rank(job, self.now, self.policy, self.ladder) for job in order}
        for job in order:
            self._consider(job)
        return Decisions(tuple(self.admits), tuple(self.preempts), self._numbered_waits(order))

    # --- one job ---------------------------------------------------------------------------------

    def _consider(self, job: WaitingJob) -> None:
        index = self.indexes.get(job.pool)
        if index is None:
            known = ", ".join(repr(p) for p in self.indexes) or "none"
            return self._wait(job, "capacity", f"pool {job.pool!r} does not exist (pools: {known})")
        problem = demand_problem(job.demand)
        if problem:
            return self._wait(job, "capacity", f"its demand {problem}")
        if self.fit.place(job.demand, self.empty[job.pool], ("empty", job.pool)) is None:
            return self._wait(job, "capacity", f"needs {describe_demand(job.demand)}; pool {job.pool!r} can never "
                                               f"hold that: it has {describe_pool(index)}")
        head = self.heads.get(job.pool)
        placed = self._placement(job, head)
        if placed is not None:
            placement, spare = placed
            usage = placement_usage(placement, index)
            verdict = self._quota_verdict(job, usage, index.compute_share(placement))
            if not verdict.allowed:
                return self._quota_wait(job, verdict, usage)
            return self._admit(job, placement, verdict.borrowed, head if spare else None, usage)
        need = demand_usage(job.demand, index)
        verdict = self._quota_verdict(job, need, 1.0)
        if not verdict.allowed:
            return self._quota_wait(job, verdict, need)
        if head is None:
            self._become_head(job, need, verdict.reclaim)
            # The quota it passed with is kept for it until its reserved start, as its devices are.
            return self.quotas.set_aside(job.team, need, self.heads[job.pool].reservation.start)
        return self._wait_behind(job, head)

    def _placement(self, job: WaitingJob, head: _Head | None) -> tuple[Placement, bool] | None:
        """Where the job may start now, and whether it took spare resources around a reservation."""
        free = self.free[job.pool]
        if head is None:
            placement = self.fit.place(job.demand, free, ("now", job.pool))
            return (placement, False) if placement is not None else None
        if not self.policy.backfill:
            return None
        if head.spare is None:
            head.spare = head.reservation.spare(free)
        return backfill_placement(job.demand, head.reservation, free, self.now, self.fit, head.spare)

    def _admit(self, job: WaitingJob, placement: Placement, borrowed: bool, around: _Head | None, usage: Usage) -> None:
        self.free[job.pool].take(placement)
        if around is not None:
            around.reservation.after_start.take(placement)
        if job.pool in self.heads:
            self.heads[job.pool].spare = None
        self.quotas.charge(job.team, usage)
        hold = self.team_holds.get(job.team)
        if hold is not None and hold.allows(usage, self.now, None) == "spare":
            hold.spare = hold.spare - usage
        self.admits.append(Admit(job.id, placement, borrowed))
        # Later reservations in this pass count on its estimated end; it is not stopped in the pass that starts it.
        self.running[job.pool].append(RunningJob(job.id, job.team, job.pool, job.priority, self.now, job.demand,
                                                 placement, preemptible=False))

    def _quota_verdict(self, job: WaitingJob, usage: Usage, compute_share: float) -> QuotaVerdict:
        seconds = job.demand.estimated_seconds / compute_share if job.demand.estimated_seconds is not None else None
        ends_at = None if seconds is None else self.now + seconds
        verdict = self.quotas.check(job.team, usage, ends_at)
        if not verdict.allowed and verdict.short_of_idle and self._fits_team_quota(job, usage):
            # Short of idle quota only because other teams borrowed it: this job may take it back.
            again = self.quotas.check(job.team, usage, ends_at, reclaim=True)
            verdict = replace(again, reclaim=True) if again.allowed else verdict
        if not verdict.allowed:
            return verdict
        hold = self.team_holds.get(job.team)
        if hold is not None and hold.allows(usage, self.now, seconds) is None:
            return QuotaVerdict(False, detail=f"starting it would delay job {hold.job_id}, first in line for "
                                              f"team {job.team!r}'s quota")
        if verdict.borrowed and self.borrow_hold is not None:
            return QuotaVerdict(False, detail=f"idle quota is kept for job {self.borrow_hold}, which has waited "
                                              "long enough to borrow first")
        return verdict

    def _fits_team_quota(self, job: WaitingJob, need: Usage) -> bool:
        """Would the job fit its team's nominal quota if the team ran nothing else?"""
        return self.quotas.within_nominal(job.team, need, self.quotas.usage.get(job.team, Usage()))

    def _quota_wait(self, job: WaitingJob, verdict: QuotaVerdict, need: Usage) -> None:
        if self._fits_team_quota(job, need):
            # It fits the team's own quota once the team's running jobs end: the team's later jobs
            # may take its quota meanwhile only where that cannot delay it.
            if job.team not in self.team_holds:
                self.team_holds[job.team] = reserve_quota(self.quotas, job.id, job.team, need,
                                                          self._team_ends(job.team))
        elif verdict.short_of_idle and self.borrow_hold is None and self.ranks[job.id] >= len(self.ladder):
            # A job bigger than its team's quota runs only on borrowed quota; once it has aged past
            # every class, idle quota is kept for it rather than lent to later jobs, so it cannot starve.
            self.borrow_hold = job.id
        self._wait(job, "quota", verdict.detail)

    def _team_ends(self, team: str) -> list[tuple[float | None, Usage]]:
        out = []
        for pool, jobs in self.running.items():
            index = self.indexes[pool]
            for r in jobs:
                if r.team == team:
                    out.append((estimated_end(r, index, self.now, self.releasing), placement_usage(r.placement, index)))
        return out

    # --- the first blocked job of a pool -----------------------------------------------------------

    def _become_head(self, job: WaitingJob, need: Usage, reclaim: bool) -> None:
        free, running = self.free[job.pool], self.running[job.pool]
        share = self.policy.share_gpus
        reservation = reserve(job.id, job.demand, free, running, self.now, share_gpus=share, releasing=self.releasing)
        victims: list = []
        late = reservation.start is None or reservation.start > self.now + self.policy.preemption_grace_seconds
        if self.policy.preemption and late:
            victims = self._preempt_for(job, need, reclaim)
            if victims:
                reservation = reserve(job.id, job.demand, free, running, self.now, share_gpus=share,
                                      releasing=self.releasing)
        self.heads[job.pool] = _Head(job, reservation)
        if victims:
            reclaim = any(c.reclaim for c in victims)
            ids = ", ".join(c.job.id for c in victims)
            what = "borrowed work of other teams" if reclaim else "lower priority"
            return self._wait(job, "quota" if reclaim else "priority",
                              f"first in line; waiting for {ids} ({what}) to checkpoint and stop", reservation.start)
        stopping = [r for r in running if r.id in self.releasing]
        if stopping and reservation.start == self.now:
            reason = "priority" if any(r.priority < job.priority for r in stopping) else shape_reason(job.demand)
            ids = ", ".join(r.id for r in stopping)
            return self._wait(job, reason, f"first in line; starts once {ids} finish stopping (checkpointing now)",
                              reservation.start)
        unknown = "" if reservation.start is not None else (
            "; no start can be estimated: what it needs is held by jobs without an estimated end")
        self._wait(job, shape_reason(job.demand),
                   f"needs {describe_demand(job.demand)}; {describe_free(job.demand, free)}; first in line{unknown}",
                   reservation.start)

    def _preempt_for(self, job: WaitingJob, need: Usage, reclaim: bool) -> list:
        index, free, running = self.indexes[job.pool], self.free[job.pool], self.running[job.pool]
        base = free.copy()
        freed: dict[str, Usage] = {}
        for r in running:
            if r.id in self.releasing:
                base.give(r.placement)
                freed[r.team] = freed.get(r.team, Usage()) + placement_usage(r.placement, index)
        pool = candidates(job, running, self.quotas, need, lambda r: placement_usage(r.placement, index),
                          self.releasing, freed, self.now, self.policy.preemption_grace_seconds, reclaim)
        victims = choose_victims(job, base, pool, self.quotas, share_gpus=self.policy.share_gpus, freed=freed)
        for c in victims:
            if c.reclaim:
                detail = f"team {job.team!r} takes back its quota for job {job.id}: this job ran on borrowed quota"
            else:
                detail = f"job {job.id} of a higher priority class ({job.priority} over {c.job.priority}) needs its resources"
            self.preempts.append(Preempt(c.job.id, job.id, "quota reclaim" if c.reclaim else "priority", detail))
        self.releasing = self.releasing | {c.job.id for c in victims}
        return victims

    # --- waiting ---------------------------------------------------------------------------------

    def _wait_behind(self, job: WaitingJob, head: _Head) -> None:
        if self.fit.place(job.demand, self.free[job.pool], ("now", job.pool)) is not None:
            if self.policy.backfill:
                detail = f"fits now, but starting it would delay job {head.job.id}, first in line"
            else:
                detail = f"fits now, but jobs start in queue order and job {head.job.id} is first in line"
            return self._wait(job, "priority", detail)
        self._wait(job, shape_reason(job.demand), f"needs {describe_demand(job.demand)}; "
                   f"{describe_free(job.demand, self.free[job.pool])}; job {head.job.id} is first in line")

    def _wait(self, job: WaitingJob, reason: WaitReason, detail: str, estimated_start: float | None = None) -> None:
        self.waits[job.id] = (reason, detail, estimated_start)

    def _numbered_waits(self, order: list[WaitingJob]) -> tuple[Wait, ...]:
        positions: dict[str, int] = {}
        out = []
        for job in order:
            if job.id in self.waits:
                positions[job.pool] = positions.get(job.pool, 0) + 1
                reason, detail, start = self.waits[job.id]
                out.append(Wait(job.id, positions[job.pool], reason, detail, start))
        return tuple(out)
