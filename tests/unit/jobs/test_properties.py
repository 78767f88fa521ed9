"""Properties over random states: no device over-committed, no gang started in part, one decision per job, determinism."""

from __future__ import annotations

import random
from collections import defaultdict

from tests.unit.jobs.builders import CARD, demand, pool, running, state, waiting
from tunewise.jobs.ledger import PoolIndex
from tunewise.jobs.placement import place
from tunewise.jobs.schedule_types import Quota
from tunewise.jobs.scheduler import schedule

MIG = {7: [("3g.40gb", 40.0, 3 / 7), ("4g.40gb", 40.0, 4 / 7)]}
STATES = 150


def _random_demand(rng: random.Random):
    kind = rng.random()
    if kind < 0.45:
        return demand(gib=rng.choice((10, 20, 30, 45)), shareable=True, hours=rng.choice((0.5, 2, None)))
    if kind < 0.75:
        return demand(gib=70, hours=rng.choice((1, 3, None)))
    if kind < 0.95:
        gpus = rng.choice((2, 4, 8, 16))
        return demand(gpus=gpus, nodes=max(1, gpus // 8), gib=60, hours=rng.choice((1, 4)))
    return demand(gpus=0, gib=0, cpu_slots=1)


def _random_state(seed: int):
    """A pool with a random set of jobs already placed by the scheduler itself, and a random queue."""
    rng = random.Random(seed)
    p = pool(nodes=rng.choice((1, 2, 3)), gpus=8, mig=MIG if rng.random() < 0.5 else None, cpu_slots=rng.choice((0, 2)))
    ledger = PoolIndex(p).empty_ledger()
    run = []
    for i in range(rng.randint(0, 14)):
        d = _random_demand(rng)
        placement = place(d, ledger)
        if placement is not None:
            ledger.take(placement)
            run.append(running(f"r{i}", d, placement, started=rng.uniform(0, 5000), priority=rng.choice((0, 100)),
                               team=rng.choice("ab"), stopping=rng.random() < 0.1, preemptible=rng.random() < 0.8))
    queue = [waiting(f"w{i}", _random_demand(rng), at=rng.uniform(0, 9000), priority=rng.choice((0, 100, 1000)),
                     team=rng.choice("abc")) for i in range(rng.randint(1, 25))]
    quotas = (Quota("a", gpus=rng.choice((2, 8))), Quota("b", gpus=4, can_lend=rng.random() < 0.5)) if rng.random() < 0.5 else ()
    return p, run, queue, quotas


def _usage(p, run, admits):
    """Memory per plain card, holders per MIG slice, CPU slots per node, with the admitted placements added."""
    memory, slices, cpu = defaultdict(float), defaultdict(int), defaultdict(int)
    for placement in [r.placement for r in run] + [a.placement for a in admits]:
        for s in placement.slots:
            if s.gpu is None:
                cpu[s.node] += s.cpu_slots
            elif s.mig_slice:
                slices[(s.node, s.mig_slice)] += 1
            else:
                memory[(s.node, s.gpu)] += s.memory_gib
    return memory, slices, cpu


def test_random_states_never_over_commit_and_never_start_a_gang_in_part():
    for seed in range(STATES):
        p, run, queue, quotas = _random_state(seed)
        d = schedule(state(p, run, queue, quotas=quotas, now=10_000, estimate_depth=3))
        memory, slices, cpu = _usage(p, run, d.admit)
        assert all(gib <= CARD + 1e-6 for gib in memory.values()), seed
        assert all(n <= 1 for n in slices.values()), seed
        assert all(cpu[node.name] <= node.cpu_slots for node in p.nodes), seed
        demands = {j.id: j.demand for j in queue}
        for a in d.admit:
            dem = demands[a.job_id]
            gpu_slots = [s for s in a.placement.slots if s.gpu is not None]
            if dem.gpus:
                assert len(gpu_slots) == dem.gpus and len({s.node for s in gpu_slots}) == dem.nodes, seed
                whole_cards = [s for s in gpu_slots if not s.mig_slice and not dem.shareable]
                assert all(s.memory_gib == CARD for s in whole_cards), seed
        decided = [a.job_id for a in d.admit] + [w.job_id for w in d.wait]
        assert sorted(decided) == sorted(demands), seed
        stopping = {r.id for r in run if r.stopping or not r.preemptible}
        assert not {x.job_id for x in d.preempt} & stopping, seed


def test_decisions_do_not_depend_on_the_order_jobs_are_listed_in():
    for seed in range(40):
        p, run, queue, quotas = _random_state(seed)
        first = schedule(state(p, run, queue, quotas=quotas, now=10_000, estimate_depth=2))
        rng = random.Random(seed)
        shuffled_run, shuffled_queue = run[:], queue[:]
        rng.shuffle(shuffled_run)
        rng.shuffle(shuffled_queue)
        again = schedule(state(p, shuffled_run, shuffled_queue, quotas=quotas, now=10_000, estimate_depth=2))
        assert first.admit == again.admit and first.preempt == again.preempt, seed
        assert sorted(first.wait, key=lambda w: w.job_id) == sorted(again.wait, key=lambda w: w.job_id), seed


def test_a_simulated_day_ends_with_every_job_done():
    """Drive the scheduler on a clock: random arrivals, jobs ending at their estimates, preempted
    jobs requeued. Every job finishes (no deadlock, no starvation) and no step breaks an invariant."""
    from dataclasses import replace

    rng = random.Random(7)
    p = pool(nodes=2, gpus=8, mig=MIG)
    arrivals = sorted((waiting(f"j{i}", _random_demand(rng), at=rng.uniform(0, 20_000), priority=rng.choice((0, 100)),
                               team=rng.choice("ab")) for i in range(60)), key=lambda j: j.submitted_at)
    empty = PoolIndex(p).empty_ledger()
    arrivals = [replace(j, demand=replace(j.demand, estimated_seconds=j.demand.estimated_seconds or 1800.0))
                for j in arrivals if place(j.demand, empty) is not None][:50]  # only jobs the pool can hold
    quotas = (Quota("a", gpus=8), Quota("b", gpus=8))
    now, queue, run, ends, done = 0.0, [], {}, {}, set()
    for _ in range(2000):
        while arrivals and arrivals[0].submitted_at <= now:
            queue.append(arrivals.pop(0))
        d = schedule(state(p, list(run.values()), queue, quotas=quotas, now=now, estimate_depth=0,
                           priority_classes=(0, 100)))
        memory, slices, _cpu = _usage(p, list(run.values()), d.admit)
        assert all(gib <= CARD + 1e-6 for gib in memory.values()) and all(n <= 1 for n in slices.values())
        for a in d.admit:
            job = next(j for j in queue if j.id == a.job_id)
            queue.remove(job)
            run[job.id] = running(job.id, job.demand, a.placement, started=now, priority=job.priority, team=job.team)
            ends[job.id] = now + job.demand.estimated_seconds
        for x in d.preempt:  # checkpoint takes a minute; then the job waits again behind its preemptor
            run[x.job_id] = replace(run[x.job_id], stopping=True)
            ends[x.job_id] = now + 60
        events = [t for t in ends.values()] + ([arrivals[0].submitted_at] if arrivals else [])
        if not events:
            break
        now = max(now, min(events))
        for job_id in [j for j, t in ends.items() if t <= now]:
            job = run.pop(job_id)
            del ends[job_id]
            if job.stopping:
                queue.append(waiting(job.id, job.demand, priority=job.priority, team=job.team,
                                     preempted_for=next(x.for_job for x in d.preempt if x.job_id == job_id)
                                     if any(x.job_id == job_id for x in d.preempt) else None))
            else:
                done.add(job_id)
    assert not queue and not run and len(done) == 50
