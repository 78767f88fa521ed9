"""Preemption: the fewest lower-priority jobs, never in vain, never twice for the same room, never back and forth."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.jobs.builders import demand, fill, pool, running, state, waiting, whole
from tunewise.jobs.scheduler import schedule

HOUR = 3600.0
NOW = 10 * HOUR  # every running job below started long enough ago to be past the grace period


def test_a_higher_class_job_stops_one_lower_class_job_when_one_suffices():
    p = pool(gpus=2)
    busy = [running("low-old", demand(), whole("n0", 0), started=0), running("low-new", demand(), whole("n0", 1), started=HOUR)]
    d = schedule(state(p, busy, [waiting("high", demand(), priority=100, at=NOW)], now=NOW))
    assert [(x.job_id, x.for_job, x.reason) for x in d.preempt] == [("low-new", "high", "priority")]
    (wait,) = d.wait
    assert wait.reason == "priority" and "low-new" in wait.detail and wait.estimated_start == NOW


def test_the_smallest_set_wins_even_when_the_first_choice_would_need_more():
    p = pool(nodes=2, gpus=2)
    # n0: two 1-card low jobs (newest first in preference); n1: one 2-card low job. A 2-card gang needs a node.
    busy = [running("x", demand(), whole("n0", 0), started=3 * HOUR), running("y", demand(), whole("n0", 1), started=2 * HOUR),
            running("pair", demand(gpus=2), whole("n1", 0, 1), started=0)]
    d = schedule(state(p, busy, [waiting("gang", demand(gpus=2), priority=100, at=NOW)], now=NOW))
    assert [x.job_id for x in d.preempt] == ["pair"]


def test_only_strictly_lower_classes_and_preemptible_jobs_are_stopped():
    p = pool(gpus=2)
    busy = [running("same", demand(), whole("n0", 0), priority=100), running("pinned", demand(), whole("n0", 1),
                                                                          preemptible=False)]
    d = schedule(state(p, busy, [waiting("high", demand(), priority=100, at=NOW)], now=NOW))
    assert d.preempt == ()


def test_nothing_is_stopped_for_a_job_that_would_still_not_fit():
    p = pool(gpus=2)
    busy = [running("low", demand(), whole("n0", 0)), running("same", demand(), whole("n0", 1), priority=100)]
    d = schedule(state(p, busy, [waiting("pair", demand(gpus=2), priority=100, at=NOW)], now=NOW))
    assert d.preempt == ()  # stopping "low" alone leaves one card: no use
    assert d.wait[0].reason == "gang"


def test_a_job_already_stopping_counts_as_freeing_its_resources():
    p = pool(gpus=2)
    busy = [running("going", demand(), whole("n0", 0), stopping=True), running("low", demand(), whole("n0", 1))]
    d = schedule(state(p, busy, [waiting("high", demand(), priority=100, at=NOW)], now=NOW))
    assert d.preempt == ()
    assert "going" in d.wait[0].detail and d.wait[0].estimated_start == NOW


def test_no_preemption_when_the_blocked_job_starts_within_the_grace_period():
    p = pool(gpus=1)
    busy = [running("ending", demand(hours=1), whole("n0", 0), started=NOW - HOUR + 120)]  # 2 min left
    d = schedule(state(p, busy, [waiting("high", demand(), priority=100, at=NOW)], now=NOW))
    assert d.preempt == ()


def test_a_just_restarted_job_is_the_last_choice():
    p = pool(gpus=2)
    busy = [running("restarted", demand(), whole("n0", 0), started=NOW - 60), running("settled", demand(), whole("n0", 1),
                                                                                      started=HOUR)]
    d = schedule(state(p, busy, [waiting("high", demand(), priority=100, at=NOW)], now=NOW))
    assert [x.job_id for x in d.preempt] == ["settled"]


def test_preemption_does_not_thrash_over_rounds():
    """Run the decisions forward: a victim that has aged past its preemptor's class never takes its room back."""
    p = pool(gpus=1)
    low = waiting("low", demand(hours=8), at=0, priority=0)
    high = waiting("high", demand(hours=2), at=5 * HOUR, priority=100)
    now = 5 * HOUR
    run = [running("low", low.demand, whole("n0", 0), started=HOUR)]
    queue = [high]
    preemptions = 0
    for _ in range(8):
        d = schedule(state(p, run, queue, now=now, priority_classes=(0, 100)))
        preemptions += len(d.preempt)
        run = [replace(r, stopping=True) if r.id in {x.job_id for x in d.preempt} else r for r in run]
        for a in d.admit:
            job = next(q for q in queue if q.id == a.job_id)
            run.append(running(job.id, job.demand, a.placement, started=now, priority=job.priority))
            queue.remove(job)
        now += 60
        for r in [r for r in run if r.stopping]:  # stopped: requeued behind the job it made room for
            run.remove(r)
            queue.append(replace(low, preempted_for="high"))
    assert preemptions == 1
    assert [r.id for r in run] == ["high"] and [q.id for q in queue] == ["low"]


def test_every_waiting_job_has_exactly_one_decision():
    p = pool(nodes=2, gpus=4)
    jobs = [waiting(f"j{i}", demand(gpus=1 + i % 3, shareable=False), at=i, priority=(i % 2) * 100) for i in range(12)]
    d = schedule(state(p, fill(p, skip=2, hours=3), jobs, now=NOW))
    decided = [a.job_id for a in d.admit] + [w.job_id for w in d.wait]
    assert sorted(decided) == sorted(j.id for j in jobs)
    assert all(w.detail and w.reason in ("quota", "memory", "gang", "priority", "capacity") for w in d.wait)
