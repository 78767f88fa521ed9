"""The simulated clock: the real scheduler (`tunewise.jobs.scheduler.schedule`) decides, this carries out.

At every event (a job arrives, ends, or finishes stopping) the scheduler is called with the
state a server would build, and its decisions are carried out: admitted jobs start on their
placement, preempted jobs checkpoint for STOP_SECONDS (holding their devices, making no
progress), then go back to the queue with what is left of their work plus RESTART_SECONDS (load
and warm-up again). Speeds follow a compute-bound model: a job alone on a card runs at full
speed; on a MIG slice at the slice's compute fraction; jobs time-sharing a card split its
compute evenly; a gang runs at its slowest worker's speed. With `small_job_busy_share` below 1,
a shareable job alone on a card keeps only that share of it busy (small models leave a large card
partly idle): jobs sharing a card then slow down only once their shares add up past the card, and
a MIG slice of compute fraction f runs such a job at min(1, f / share). Every admission is checked: no device
over-committed, no gang started with fewer workers than it asked for.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from _sim_trace import TraceJob

from tunewise.jobs.ledger import PoolIndex
from tunewise.jobs.schedule_types import ClusterState, Pool, Quota, RunningJob, SchedulerPolicy, WaitingJob
from tunewise.jobs.scheduler import schedule

STOP_SECONDS = 60.0
RESTART_SECONDS = 120.0
SAMPLE_EVERY_S = 600.0


@dataclass
class _Run:
    job: RunningJob
    remaining_s: float  # full-speed seconds of work left
    speed: float = 1.0


@dataclass
class SimResult:
    finished: dict[str, float] = field(default_factory=dict)  # job -> end time
    first_start: dict[str, float] = field(default_factory=dict)
    preemptions: Counter = field(default_factory=Counter)
    partial_gang_starts: int = 0
    overcommits: int = 0
    busy_compute_s: float = 0.0  # card-seconds of compute doing work
    scheduler_calls: int = 0
    timeline: list[tuple[float, int, float]] = field(default_factory=list)  # (time, queued, busy cards)
    stuck: list[str] = field(default_factory=list)


class Simulation:
    def __init__(self, pools: tuple[Pool, ...], quotas: tuple[Quota, ...], policy: SchedulerPolicy,
                 trace: list[TraceJob], small_job_busy_share: float = 1.0) -> None:
        self.pools, self.quotas, self.policy = pools, quotas, policy
        self.small_share = small_job_busy_share
        self.index = PoolIndex(pools[0])
        self.trace = {job.id: job for job in trace}
        self.arrivals = sorted(trace, key=lambda j: (j.submitted_at, j.id))
        self.waiting: dict[str, WaitingJob] = {}
        self.running: dict[str, _Run] = {}
        self.stopping: dict[str, tuple[_Run, float]] = {}  # job -> (run, when it has stopped)
        self.left_after_stop: dict[str, float] = {}  # preempted job -> full-speed seconds still to run
        self.stopped_for: dict[str, str] = {}  # preempted job -> the job it made room for
        self.result = SimResult()
        self.now = 0.0

    def run(self) -> SimResult:
        next_sample = 0.0
        while self.arrivals or self.waiting or self.running or self.stopping:
            self._arrive()
            self._decide()
            upcoming = self._next_event()
            if upcoming is None:  # nothing will ever change: report what is stuck
                self.result.stuck = sorted(self.waiting)
                break
            while next_sample <= upcoming:
                self.result.timeline.append((next_sample, len(self.waiting), self._busy_cards()))
                next_sample += SAMPLE_EVERY_S
            self._advance(upcoming)
        return self.result

    # --- events ------------------------------------------------------------------------------------

    def _arrive(self) -> None:
        while self.arrivals and self.arrivals[0].submitted_at <= self.now:
            job = self.arrivals.pop(0)
            self.waiting[job.id] = WaitingJob(job.id, job.team, "gpu", job.priority, job.submitted_at, job.demand)

    def _decide(self) -> None:
        running = tuple(r.job for r in self.running.values()) + tuple(
            replace(r.job, stopping=True) for r, _ in self.stopping.values())
        state = ClusterState(self.pools, running, tuple(self.waiting.values()), self.quotas, self.now, self.policy)
        decisions = schedule(state)
        self.result.scheduler_calls += 1
        for admit in decisions.admit:
            waiting = self.waiting.pop(admit.job_id)
            self._check_gang(waiting, admit.placement)
            job = RunningJob(waiting.id, waiting.team, waiting.pool, waiting.priority, self.now, waiting.demand,
                             admit.placement)
            left = self.left_after_stop.pop(job.id, self.trace[job.id].actual_seconds)
            self.running[job.id] = _Run(job, left)
            self.result.first_start.setdefault(job.id, self.now)
        for preempt in decisions.preempt:
            run = self.running.pop(preempt.job_id)
            self.stopping[preempt.job_id] = (run, self.now + STOP_SECONDS)
            self.stopped_for[preempt.job_id] = preempt.for_job
            self.result.preemptions[preempt.reason] += 1
        if decisions.admit:
            self._check_overcommit()
        self._set_speeds()

    def _next_event(self) -> float | None:
        times = [self.now + r.remaining_s / r.speed for r in self.running.values() if r.speed > 0]
        times += [done for _run, done in self.stopping.values()]
        if self.arrivals:
            times.append(self.arrivals[0].submitted_at)
        return max(min(times), self.now) if times else None

    def _advance(self, to: float) -> None:
        elapsed = to - self.now
        self.result.busy_compute_s += self._busy_cards() * elapsed
        for run in self.running.values():
            run.remaining_s -= run.speed * elapsed
        self.now = to
        for job_id in [j for j, r in self.running.items() if r.remaining_s <= 1e-6]:
            del self.running[job_id]
            self.result.finished[job_id] = self.now
        for job_id in [j for j, (_r, done) in self.stopping.items() if done <= self.now]:
            run, _done = self.stopping.pop(job_id)
            self._requeue(run)

    def _requeue(self, run: _Run) -> None:
        # The server requeues a preempted job with its original submission time (its aging goes on),
        # the estimate of what is left and the job it made room for; the checkpoint saved the work,
        # the restart costs a reload.
        trace = self.trace[run.job.id]
        left = run.remaining_s + RESTART_SECONDS
        estimate = trace.demand.estimated_seconds * run.remaining_s / trace.actual_seconds + RESTART_SECONDS
        job = run.job
        self.waiting[job.id] = WaitingJob(job.id, job.team, job.pool, job.priority, trace.submitted_at,
                                          replace(job.demand, estimated_seconds=estimate),
                                          preempted_for=self.stopped_for.pop(job.id, None))
        self.left_after_stop[job.id] = left

    # --- the compute model -------------------------------------------------------------------------

    def _busy_share(self, job: RunningJob) -> float:
        return self.small_share if job.demand.shareable else 1.0

    def _card_loads(self) -> Counter:
        loads: Counter = Counter()
        for run in self.running.values():
            for slot in run.job.placement.slots:
                if slot.mig_slice is None:
                    loads[(slot.node, slot.gpu)] += self._busy_share(run.job)
        return loads

    def _set_speeds(self) -> None:
        loads = self._card_loads()
        for run in self.running.values():
            share = self._busy_share(run.job)
            speeds = []
            for slot in run.job.placement.slots:
                if slot.mig_slice is not None:
                    speeds.append(min(1.0, self.index.slices[(slot.node, slot.mig_slice)].mig.compute_fraction / share))
                else:
                    speeds.append(min(1.0, 1.0 / loads[(slot.node, slot.gpu)]))
            run.speed = min(speeds)

    def _busy_cards(self) -> float:
        """Cards' worth of compute doing work (a stopping job holds devices but does no work)."""
        busy = sum(min(1.0, load) for load in self._card_loads().values())
        for run in self.running.values():
            for slot in run.job.placement.slots:
                if slot.mig_slice is not None:
                    fraction = self.index.slices[(slot.node, slot.mig_slice)].mig.compute_fraction
                    busy += min(fraction, self._busy_share(run.job))
        return busy

    # --- the checks ----------------------------------------------------------------------------------

    def _check_gang(self, job: WaitingJob, placement) -> None:
        gpu_slots = [s for s in placement.slots if s.gpu is not None]
        if job.demand.gpus and (len(gpu_slots) != job.demand.gpus
                                or len({s.node for s in gpu_slots}) != job.demand.nodes):
            self.result.partial_gang_starts += 1

    def _check_overcommit(self) -> None:
        memory: defaultdict = defaultdict(float)
        slices: Counter = Counter()
        for run in list(self.running.values()) + [r for r, _ in self.stopping.values()]:
            for slot in run.job.placement.slots:
                if slot.mig_slice is not None:
                    slices[(slot.node, slot.mig_slice)] += 1
                else:
                    memory[(slot.node, slot.gpu)] += slot.memory_gib
        over = [k for k, gib in memory.items() if gib > self.index.gpus[k].gpu.memory_gib + 1e-6]
        self.result.overcommits += len(over) + sum(1 for n in slices.values() if n > 1)


def wait_stats(waits: list[float]) -> dict[str, float]:
    """Mean, 95th percentile and max of waits, in hours."""
    if not waits:
        return {"jobs": 0, "mean_h": 0.0, "p95_h": 0.0, "max_h": 0.0}
    ordered = sorted(waits)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"jobs": len(waits), "mean_h": round(statistics.fmean(waits) / 3600, 2), "p95_h": round(p95 / 3600, 2),
            "max_h": round(ordered[-1] / 3600, 2)}
