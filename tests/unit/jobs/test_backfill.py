"""Backfill around the first blocked job: only when its reserved start cannot move."""

from __future__ import annotations

from tests.unit.jobs.builders import demand, pool, running, state, waiting, whole
from tunewise.jobs.scheduler import schedule

HOUR = 3600.0


def _two_nodes_half_busy():
    """n0: cards 0-3 busy for 1 h; n1: cards 0-1 busy for 5 h. A gang of 4 on one node is blocked."""
    p = pool(nodes=2, gpus=4)
    busy = [running(f"a{i}", demand(hours=1), whole("n0", i)) for i in range(4)]
    busy += [running(f"b{i}", demand(hours=5), whole("n1", i)) for i in range(2)]
    return p, busy


def test_the_blocked_job_gets_a_reservation_from_running_jobs_estimated_ends():
    p, busy = _two_nodes_half_busy()
    d = schedule(state(p, busy, [waiting("gang", demand(gpus=4))], now=0))
    (wait,) = d.wait
    assert wait.reason == "gang" and wait.position == 1
    assert wait.estimated_start == HOUR  # n0 frees at 1 h


def test_a_short_job_backfills_before_the_reserved_start_and_a_long_one_does_not():
    p, busy = _two_nodes_half_busy()
    jobs = [waiting("gang", demand(gpus=4, nodes=1), at=0),
            waiting("long", demand(hours=3), at=1), waiting("short", demand(hours=0.5), at=2)]
    # Free now: n1 cards 2-3. The gang's reservation is n0 at 1 h, so both are spare.
    d = schedule(state(p, busy, jobs))
    assert {a.job_id for a in d.admit} == {"long", "short"}


def test_backfill_never_takes_what_the_reservation_needs_past_its_start():
    p = pool(nodes=1, gpus=4)
    busy = [running("a", demand(hours=2), whole("n0", 0)), running("b", demand(hours=2), whole("n0", 1))]
    jobs = [waiting("gang", demand(gpus=4), at=0), waiting("long", demand(hours=3), at=1),
            waiting("short", demand(hours=1), at=2)]
    d = schedule(state(p, busy, jobs))
    # The gang needs all four cards at 2 h. "short" ends at 1 h: it may start; "long" would hold a card past 2 h.
    assert [a.job_id for a in d.admit] == ["short"]
    reasons = {w.job_id: (w.reason, w.detail) for w in d.wait}
    assert reasons["long"][0] == "priority" and "would delay job gang" in reasons["long"][1]
    assert reasons["gang"][0] == "gang"


def test_missing_estimates_allow_no_backfill_on_devices_the_blocked_job_could_use():
    p = pool(nodes=1, gpus=4, cpu_slots=1)
    busy = [running("a", demand(hours=None), whole("n0", 0)), running("b", demand(hours=2), whole("n0", 1))]
    jobs = [waiting("gang", demand(gpus=4), at=0), waiting("short", demand(hours=0.1), at=1),
            waiting("cpu", demand(gpus=0, gib=0), at=2)]
    d = schedule(state(p, busy, jobs))
    assert [a.job_id for a in d.admit] == ["cpu"]  # a CPU slot is no use to the gang
    gang = next(w for w in d.wait if w.job_id == "gang")
    assert gang.estimated_start is None and "no start can be estimated" in gang.detail


def test_a_job_past_its_estimate_is_expected_to_end_within_another_quarter_of_it():
    p = pool(nodes=1, gpus=2)
    busy = [running("late", demand(hours=4), whole("n0", 0), started=0)]
    d = schedule(state(p, busy, [waiting("pair", demand(gpus=2))], now=5 * HOUR))
    assert d.wait[0].estimated_start == 6 * HOUR  # 5 h + a quarter of 4 h


def test_without_backfill_nothing_starts_ahead_of_the_blocked_job():
    p, busy = _two_nodes_half_busy()
    jobs = [waiting("gang", demand(gpus=4), at=0), waiting("short", demand(hours=0.1), at=1)]
    d = schedule(state(p, busy, jobs, backfill=False))
    assert d.admit == ()
    short = next(w for w in d.wait if w.job_id == "short")
    assert short.reason == "priority" and "queue order" in short.detail


def test_estimated_starts_follow_the_policy_forward():
    p = pool(nodes=1, gpus=2)
    busy = [running("a", demand(hours=1), whole("n0", 0)), running("b", demand(hours=2), whole("n0", 1))]
    jobs = [waiting("x", demand(hours=1), at=0), waiting("y", demand(hours=1), at=1), waiting("z", demand(hours=1), at=2)]
    d = schedule(state(p, busy, jobs))
    starts = {w.job_id: w.estimated_start for w in d.wait}
    assert starts == {"x": HOUR, "y": 2 * HOUR, "z": 2 * HOUR}
    shallow = schedule(state(p, busy, jobs, estimate_depth=1))
    assert {w.job_id: w.estimated_start for w in shallow.wait} == {"x": HOUR, "y": None, "z": None}
