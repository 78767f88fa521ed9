"""Queue order: priority classes, FIFO within a class, aging, and requeued victims behind their preemptor."""

from __future__ import annotations

from tests.unit.jobs.builders import demand, fill, pool, state, waiting
from tunewise.jobs.ordering import queue_order
from tunewise.jobs.scheduler import schedule

HOUR = 3600.0


def _ids(jobs) -> list[str]:
    return [j.id for j in jobs]


def test_higher_class_first_then_fifo_within_a_class():
    jobs = [waiting("low-old", demand(), at=0, priority=0), waiting("high-new", demand(), at=30, priority=100),
            waiting("high-old", demand(), at=10, priority=100), waiting("low-new", demand(), at=20, priority=0)]
    s = state(pool(), [], jobs, aging_seconds=None)
    assert _ids(queue_order(s)) == ["high-old", "high-new", "low-old", "low-new"]


def test_the_first_in_line_starts_first():
    p = pool(gpus=1)
    jobs = [waiting("low", demand(), at=0, priority=0), waiting("high", demand(), at=5, priority=100)]
    d = schedule(state(p, [], jobs, aging_seconds=None))
    assert [a.job_id for a in d.admit] == ["high"]
    assert d.wait[0].job_id == "low" and d.wait[0].position == 1


def test_aging_lifts_a_waiting_job_one_class_per_step():
    jobs = [waiting("low", demand(), at=0, priority=0), waiting("high", demand(), at=2.5 * HOUR, priority=100)]
    one_class = state(pool(), [], jobs, now=3 * HOUR, aging_seconds=2 * HOUR, priority_classes=(0, 100))
    # low has waited 3 h: one step, so it ranks with the high class, and was submitted first.
    assert _ids(queue_order(one_class)) == ["low", "high"]
    not_yet = state(pool(), [], jobs, now=1.9 * HOUR, aging_seconds=2 * HOUR, priority_classes=(0, 100))
    assert _ids(queue_order(not_yet)) == ["high", "low"]


def test_aging_bounds_the_wait_under_a_stream_of_higher_class_jobs():
    """A low job on a busy one-card pool, with a new high job arriving every half hour: it still starts."""
    p = pool(gpus=1)
    low = waiting("low", demand(hours=0.5), at=0, priority=0)
    started_at = None
    for step in range(1, 12):
        now = step * 0.5 * HOUR
        highs = [waiting(f"high-{k}", demand(hours=0.5), at=k * 0.5 * HOUR, priority=100) for k in range(step, step + 2)]
        d = schedule(state(p, [], [low, *highs], now=now, aging_seconds=HOUR, priority_classes=(0, 100)))
        if d.admit[0].job_id == "low":
            started_at = now
            break
    assert started_at is not None and started_at <= 2 * HOUR


def test_without_priorities_the_queue_is_fifo():
    jobs = [waiting("b", demand(), at=1, priority=1000), waiting("a", demand(), at=0, priority=0)]
    assert _ids(queue_order(state(pool(), [], jobs, priorities=False))) == ["a", "b"]


def test_a_requeued_victim_queues_right_behind_the_job_it_made_room_for():
    # The victim was submitted long ago and has aged to the top; the room it gave up still goes to "x".
    jobs = [waiting("victim", demand(), at=0, priority=0, preempted_for="x"),
            waiting("x", demand(), at=9 * HOUR, priority=100), waiting("other", demand(), at=8 * HOUR, priority=100)]
    order = _ids(queue_order(state(pool(), [], jobs, now=10 * HOUR, priority_classes=(0, 100))))
    assert order.index("victim") == order.index("x") + 1
    # Once "x" has started, the victim ranks on its own again.
    alone = state(pool(), [], [jobs[0], jobs[2]], now=10 * HOUR, priority_classes=(0, 100))
    assert _ids(queue_order(alone)) == ["victim", "other"]


def test_positions_count_per_pool_from_one():
    a, b = pool(gpus=1, name="a"), pool(gpus=1, name="b")
    busy = fill(a) + fill(b)
    jobs = [waiting(f"{p}{i}", demand(), at=i, pool_name=p) for p in "ab" for i in range(3)]
    d = schedule(state((a, b), busy, jobs))
    positions = {w.job_id: w.position for w in d.wait}
    assert positions == {"a0": 1, "a1": 2, "a2": 3, "b0": 1, "b1": 2, "b2": 3}
