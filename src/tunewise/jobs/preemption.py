"""Preemption: which running jobs the first blocked job of a pool may stop, and the fewest that make it fit.

Who may be stopped, for a job J that cannot start otherwise (only preemptible jobs, never one
already stopping):
  - without quotas: running jobs of a strictly lower priority class;
  - with quotas: J's own team's jobs of a strictly lower class; and other teams' borrowed work,
    any class when J runs within its team's nominal quota (reclaim), or only of a strictly
    lower class when J itself would borrow. Work within another team's nominal quota is never
    taken: a nominal quota is a guarantee.
Borrowed work goes first, then the lowest class; within those, a job that started within the
grace period goes last (stopping it at once would only cost it a restart), then the most recently
started (the least done since its last checkpoint). Nothing is stopped for a job that would still
not fit with every candidate stopped.

Why this cannot thrash: a preempted job is requeued behind the job it made room for
(`WaitingJob.preempted_for`, ordering.py), so the room goes to that job and not back to the victim;
and the victim either ranks in a strictly lower class, or belongs to a team over its quota while
the other team is within its own, so it can never preempt that job in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tunewise.jobs.ledger import Ledger
from tunewise.jobs.placement import place
from tunewise.jobs.quotas import QuotaBook, Usage
from tunewise.jobs.schedule_types import RunningJob, WaitingJob


@dataclass(frozen=True)
class Candidate:
    job: RunningJob
    reclaim: bool  # taken back from another team's borrowed work rather than for priority
    usage: Usage


def candidates(head: WaitingJob, running: list[RunningJob], quotas: QuotaBook, head_usage: Usage,
               usage_of: Callable[[RunningJob], Usage], releasing: frozenset[str],
               freed: dict[str, Usage], now: float, grace_seconds: float, reclaim: bool = False) -> list[Candidate]:
    """Running jobs the head may stop, in the order they should be stopped.

    `freed` is, per team, what its jobs already stopping will give back (it no longer counts as borrowed).
    `reclaim`: the head passed its quota only by taking back other teams' borrowed quota.
    """
    head_within = reclaim or quotas.within_nominal(head.team, head_usage, freed.get(head.team, Usage()))

    def borrowing(team: str) -> bool:
        return quotas.over_nominal(team, freed.get(team, Usage()))

    out = []
    for job in running:
        if not job.preemptible or job.stopping or job.id in releasing:
            continue
        lower = job.priority < head.priority
        if not quotas.enabled:
            if lower:
                out.append(Candidate(job, False, usage_of(job)))
        elif job.team == head.team:
            if lower:
                out.append(Candidate(job, False, usage_of(job)))
        elif borrowing(job.team) and (head_within or lower):
            out.append(Candidate(job, head_within, usage_of(job)))
    # A job that only just (re)started goes last: stopping it again at once would restart it for nothing.
    settled = now - grace_seconds
    out.sort(key=lambda c: (not borrowing(c.job.team), c.job.priority, c.job.started_at > settled,
                            -c.job.started_at, c.job.id))
    return out


class _Search:
    def __init__(self, head: WaitingJob, base: Ledger, quotas: QuotaBook, share_gpus: bool,
                 freed: dict[str, Usage]) -> None:
        self.head, self.base, self.quotas, self.share_gpus, self.freed = head, base, quotas, share_gpus, freed

    def fits(self, chosen: list[Candidate]) -> bool:
        ledger = self.base.copy()
        for c in chosen:
            ledger.give(c.job.placement)
        return place(self.head.demand, ledger, share_gpus=self.share_gpus) is not None

    def allowed(self, chosen: list[Candidate], extra: Candidate) -> bool:
        """Another team's job may be taken only while that team is still over its quota without the others."""
        if not self.quotas.enabled or extra.job.team == self.head.team:
            return True
        freed = sum((c.usage for c in chosen if c.job.team == extra.job.team), self.freed.get(extra.job.team, Usage()))
        return self.quotas.over_nominal(extra.job.team, freed)

    def greedy(self, pool: list[Candidate]) -> list[Candidate] | None:
        chosen: list[Candidate] = []
        for c in pool:
            if self.allowed(chosen, c):
                chosen.append(c)
                if self.fits(chosen):
                    return self.prune(chosen)
        return None

    def prune(self, chosen: list[Candidate]) -> list[Candidate]:
        """Drop every victim the head can do without, latest-chosen first."""
        for c in list(reversed(chosen)):
            rest = [x for x in chosen if x is not c]
            if self.fits(rest):
                chosen = rest
        return chosen


def choose_victims(head: WaitingJob, base: Ledger, pool: list[Candidate], quotas: QuotaBook, *,
                   share_gpus: bool, freed: dict[str, Usage]) -> list[Candidate]:
    """The fewest candidates whose stopping lets the head fit (empty when no set does).

    `base` is the pool's free resources with jobs already stopping counted as free. One victim is
    tried first; then greedy sets, over all candidates and over each node's, each pruned to a
    minimal set; the smallest wins (then the fewest GPUs freed, then the earliest in preference).
    """
    search = _Search(head, base, quotas, share_gpus, freed)
    everyone = search.greedy(pool) if pool else None
    if everyone is None:
        return []  # even stopping every candidate would not let it start
    for c in pool:
        if search.allowed([], c) and search.fits([c]):
            return [c]
    options = [everyone]
    if head.demand.nodes == 1:
        for node in base.index.node_names:
            chosen = search.greedy([c for c in pool if any(s.node == node for s in c.job.placement.slots)])
            if chosen:
                options.append(chosen)
    order = {id(c): i for i, c in enumerate(pool)}
    return min(options, key=lambda o: (len(o), sum(c.usage.gpus for c in o), sorted(order[id(c)] for c in o)))
