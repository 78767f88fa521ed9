"""Team quotas: nominal GPUs and/or GPU memory per team, borrowing of idle quota, and what reclaim may take.

A team's usage is counted over every pool, in whole-GPU equivalents (a 20 GiB share of an 80 GiB
card counts 0.25; a MIG slice counts its memory's share of the card) and in GiB of GPU memory.
With no quotas configured nothing is limited. Once any quota is configured, a team without one
has a nominal quota of 0: it runs only on borrowed capacity.

Borrowing: a job that would take its team past its nominal quota may still start on idle quota,
the unused nominal quota of teams that lend plus capacity promised to no team, as long as its
team may borrow. Such work is "borrowed" and is the first to be preempted when a lending team
needs its quota back (reclaim, preemption.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.jobs.ledger import EPS, PoolIndex
from tunewise.jobs.schedule_types import Demand, Placement, Quota, RunningJob

DIMENSIONS = (("gpus", "GPUs"), ("gpu_memory_gib", "GiB of GPU memory"))


@dataclass(frozen=True)
class Usage:
    gpus: float = 0.0
    gpu_memory_gib: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.gpus + other.gpus, self.gpu_memory_gib + other.gpu_memory_gib)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.gpus - other.gpus, self.gpu_memory_gib - other.gpu_memory_gib)


def placement_usage(placement: Placement, index: PoolIndex | None) -> Usage:
    gpus = memory = 0.0
    for slot in placement.slots:
        if slot.gpu is None:
            continue
        card = index.card_memory(slot) if index else None
        memory += slot.memory_gib
        gpus += slot.memory_gib / card if card else 1.0
    return Usage(gpus, memory)


def demand_usage(demand: Demand, index: PoolIndex) -> Usage:
    """What a job that has no placement yet would count against its quota (the card it would likely get)."""
    if demand.gpus == 0:
        return Usage()
    cards = [i.gpu.memory_gib for i in index.gpus.values() if demand.gpu_type in (None, i.gpu.type)]
    cards += [s.gpu.memory_gib for s in index.slices.values() if demand.gpu_type in (None, s.gpu.type)]
    card = max(cards, default=demand.memory_gib_per_gpu or 1.0)
    if demand.shareable:
        return Usage(demand.memory_gib_per_gpu / card, demand.memory_gib_per_gpu)
    return Usage(float(demand.gpus), demand.gpus * card)


@dataclass(frozen=True)
class QuotaVerdict:
    allowed: bool
    borrowed: bool = False
    detail: str = ""
    short_of_idle: bool = False  # refused only because too little idle quota is free to borrow now
    reclaim: bool = False  # allowed by taking back other teams' borrowed quota: it may preempt that work


def _num(value: float) -> str:
    return f"{value:.3g}"


class QuotaBook:
    """Nominal quotas and current usage per team, over all pools; charged as jobs are admitted."""

    def __init__(self, quotas: tuple[Quota, ...], indexes: dict[str, PoolIndex], running: tuple[RunningJob, ...]) -> None:
        self.enabled = bool(quotas)
        self.quotas = {q.team: q for q in quotas}
        self.dims = [d for d, _ in DIMENSIONS if any(getattr(q, d) is not None for q in quotas)]
        self.capacity = Usage(
            float(sum(len({(i.node, i.gpu.index) for i in idx.gpus.values()})
                      + len({(s.node, s.gpu.index) for s in idx.slices.values()}) for idx in indexes.values())),
            sum(sum(i.gpu.memory_gib for i in idx.gpus.values())
                + sum({(s.node, s.gpu.index): s.gpu.memory_gib for s in idx.slices.values()}.values())
                for idx in indexes.values()))
        self.usage: dict[str, Usage] = {}
        for job in running:
            self.charge(job.team, placement_usage(job.placement, indexes.get(job.pool)))
        # Quota kept for a pool's first blocked job until its reserved start: (team, usage, start).
        self.set_asides: list[tuple[str, Usage, float | None]] = []
        self._ends_at: float | None = None  # the end of the job being checked: set-asides it ends before don't count

    def charge(self, team: str, usage: Usage) -> None:
        self.usage[team] = self.usage.get(team, Usage()) + usage

    def set_aside(self, team: str, usage: Usage, until: float | None) -> None:
        """Keep `usage` of quota for a job of `team` that passed its quota check but waits for devices
        until `until` (None: not known): later jobs see it as used unless they end before then."""
        self.set_asides.append((team, usage, until))

    def _used(self, team: str) -> Usage:
        used = self.usage.get(team, Usage())
        for owner, usage, until in self.set_asides:
            if owner == team and (until is None or self._ends_at is None or self._ends_at > until):
                used = used + usage
        return used

    def nominal(self, team: str, dim: str) -> float:
        quota = self.quotas.get(team)
        if quota is None:
            return 0.0
        value = getattr(quota, dim)
        return float("inf") if value is None else float(value)

    def _teams(self) -> set[str]:
        return set(self.quotas) | set(self.usage) | {team for team, _u, _t in self.set_asides}

    def _lendable(self, dim: str) -> float:
        """Idle nominal quota of lending teams, plus capacity no team was promised."""
        promised = idle = 0.0
        for team in self._teams():
            nominal = self.nominal(team, dim)
            if nominal == float("inf"):
                continue
            promised += nominal
            quota = self.quotas.get(team)
            if quota is not None and quota.can_lend:
                idle += max(0.0, nominal - getattr(self._used(team), dim))
        return idle + max(0.0, getattr(self.capacity, dim) - promised)

    def _borrowed(self, dim: str) -> float:
        total = 0.0
        for team in self._teams():
            nominal = self.nominal(team, dim)
            if nominal != float("inf"):
                total += max(0.0, getattr(self._used(team), dim) - nominal)
        return total

    def within_nominal(self, team: str, need: Usage, freed: Usage = Usage()) -> bool:
        """True when `need` fits the team's own nominal quota on top of its usage (less `freed`)."""
        if not self.enabled:
            return True
        usage = self.usage.get(team, Usage()) - freed
        return all(getattr(usage, d) + getattr(need, d) <= self.nominal(team, d) + EPS for d in self.dims)

    def over_nominal(self, team: str, freed: Usage = Usage()) -> bool:
        """True while the team uses more than its nominal quota (less `freed`): some of its work is borrowed."""
        if not self.enabled:
            return False
        usage = self.usage.get(team, Usage()) - freed
        return any(getattr(usage, d) > self.nominal(team, d) + EPS for d in self.dims)

    def check(self, team: str, need: Usage, ends_at: float | None = None, *, reclaim: bool = False) -> QuotaVerdict:
        """May a job of `team` needing `need` start now: within quota, on borrowed quota, or not at all?

        `ends_at`: when the job should end (None: unknown); quota set aside for a blocked job it ends
        before does not count against it. `reclaim`: count other teams' borrowed quota as idle (it
        can be taken back for this job).
        """
        if not self.enabled:
            return QuotaVerdict(True)
        self._ends_at = ends_at
        try:
            return self._check(team, need, reclaim)
        finally:
            self._ends_at = None

    def _check(self, team: str, need: Usage, reclaim: bool) -> QuotaVerdict:
        borrowed = False
        quota = self.quotas.get(team)
        for dim, unit in DIMENSIONS:
            if dim not in self.dims:
                continue
            nominal = self.nominal(team, dim)
            used = getattr(self._used(team), dim)
            after = used + getattr(need, dim)
            if after <= nominal + EPS:
                continue
            held = f"team {team!r} uses {_num(used)} of its {_num(nominal)} {unit}"
            if quota is not None and not quota.can_borrow:
                return QuotaVerdict(False, detail=f"{held} and may not borrow; the job needs {_num(getattr(need, dim))} more")
            extra = after - max(used, nominal)
            own_idle = max(0.0, nominal - used) if quota is not None and quota.can_lend else 0.0
            borrowed = max(0.0, used - nominal) if reclaim else self._borrowed(dim)
            idle = self._lendable(dim) - own_idle - borrowed
            if extra > idle + EPS:
                return QuotaVerdict(False, short_of_idle=True, detail=(
                    f"{held}; the job needs {_num(getattr(need, dim))}, {_num(extra)} past the quota, and only "
                    f"{_num(max(idle, 0.0))} idle quota can be borrowed now"))
            borrowed = True
        return QuotaVerdict(True, borrowed=borrowed)


@dataclass
class QuotaReservation:
    """The first job of a team waiting for the team's own quota to free up, and what the team may
    still take meanwhile without delaying it (the quota analogue of the device reservation in backfill.py)."""

    job_id: str
    start: float | None  # when the team's running jobs should have freed enough (None: not known)
    spare: Usage  # quota the team may take at any length without delaying the reserved job

    def allows(self, usage: Usage, now: float, seconds: float | None) -> str | None:
        """"spare" or "ends first" when a job of the team using `usage` for `seconds` may start; else None."""
        if usage.gpus <= self.spare.gpus + EPS and usage.gpu_memory_gib <= self.spare.gpu_memory_gib + EPS:
            return "spare"
        if self.start is not None and seconds is not None and now + seconds <= self.start + EPS:
            return "ends first"
        return None


def reserve_quota(book: QuotaBook, job_id: str, team: str, need: Usage,
                  ends: list[tuple[float | None, Usage]]) -> QuotaReservation:
    """When `team`'s running jobs (their estimated ends and usage) leave room in its nominal quota for `need`."""
    usage = book.usage.get(team, Usage())

    def room(after: Usage) -> Usage:
        return Usage(*(book.nominal(team, d) - getattr(after, d) - getattr(need, d) if d in book.dims else float("inf")
                       for d, _unit in DIMENSIONS))

    for end, freed in sorted((e for e in ends if e[0] is not None), key=lambda e: e[0]):
        usage = usage - freed
        spare = room(usage)
        if spare.gpus >= -EPS and spare.gpu_memory_gib >= -EPS:
            return QuotaReservation(job_id, end, Usage(max(spare.gpus, 0.0), max(spare.gpu_memory_gib, 0.0)))
    return QuotaReservation(job_id, None, Usage())
