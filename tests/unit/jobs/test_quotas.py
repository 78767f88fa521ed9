"""Team quotas: nominal shares, borrowing idle quota, reclaim, and a team's own first-in-line job."""

from __future__ import annotations

from tests.unit.jobs.builders import demand, pool, running, state, waiting, whole
from tunewise.jobs.schedule_types import Quota
from tunewise.jobs.scheduler import schedule

HOUR = 3600.0
QUOTAS = (Quota("a", gpus=2), Quota("b", gpus=2))


def _busy(team: str, *cards: int, node: str = "n0", hours: float = 5.0, started: float = 0.0):
    return [running(f"{team}{c}", demand(hours=hours), whole(node, c), team=team, started=started) for c in cards]


def test_a_team_within_its_quota_starts_and_past_it_waits():
    p = pool(gpus=4)
    jobs = [waiting("a-1", demand(), team="a"), waiting("a-2", demand(), team="a", at=1),
            waiting("a-3", demand(), team="a", at=2)]
    d = schedule(state(p, [], jobs, quotas=(Quota("a", gpus=2, can_borrow=False), Quota("b", gpus=2))))
    assert [a.job_id for a in d.admit] == ["a-1", "a-2"]
    (wait,) = d.wait
    assert wait.reason == "quota" and "uses 2 of its 2 GPUs and may not borrow" in wait.detail


def test_idle_quota_of_another_team_is_borrowed_and_marked():
    p = pool(gpus=4)
    jobs = [waiting(f"a-{i}", demand(), team="a", at=i) for i in range(4)]
    d = schedule(state(p, [], jobs, quotas=QUOTAS))
    assert [(a.job_id, a.borrowed) for a in d.admit] == [("a-0", False), ("a-1", False), ("a-2", True), ("a-3", True)]


def test_a_team_that_lends_nothing_keeps_its_quota_idle():
    p = pool(gpus=4)
    quotas = (Quota("a", gpus=2), Quota("b", gpus=2, can_lend=False))
    d = schedule(state(p, [], [waiting(f"a-{i}", demand(), team="a", at=i) for i in range(3)], quotas=quotas))
    assert len(d.admit) == 2 and d.wait[0].reason == "quota" and "0 idle quota" in d.wait[0].detail


def test_shares_count_by_memory_against_a_gpu_quota():
    p = pool(gpus=2)
    jobs = [waiting(f"s{i}", demand(gib=20, shareable=True), team="a", at=i) for i in range(6)]
    d = schedule(state(p, [], jobs, quotas=(Quota("a", gpus=1, can_borrow=False), Quota("b", gpus=1))))
    assert len(d.admit) == 4  # four 20 GiB shares make one 80 GiB card


def test_reclaim_preempts_borrowed_work_first():
    p = pool(gpus=4)
    # Team a runs 3 cards (1 borrowed from b); b's own job comes: a's newest borrowed job is stopped.
    busy = _busy("a", 0, 1, started=0) + [running("a-borrowed", demand(hours=5), whole("n0", 2), team="a", started=60),
                                         running("b0", demand(hours=5), whole("n0", 3), team="b")]
    d = schedule(state(p, busy, [waiting("b-new", demand(), team="b", at=100)], quotas=QUOTAS, now=1000))
    assert [(x.job_id, x.for_job, x.reason) for x in d.preempt] == [("a-borrowed", "b-new", "quota reclaim")]
    (wait,) = d.wait
    assert wait.reason == "quota" and "a-borrowed" in wait.detail
    assert "takes back its quota" in d.preempt[0].detail


def test_no_reclaim_for_a_job_that_would_itself_borrow():
    p = pool(gpus=4)
    busy = _busy("a", 0, 1) + _busy("a", 2, started=60) + _busy("b", 3)
    # b's job fits within b's nominal (1 + 1 = 2), a's third card is borrowed: reclaim (the newest of
    # a's jobs). A second b job would borrow itself, so it may not take a's work.
    d = schedule(state(p, busy, [waiting("b-1", demand(), team="b"), waiting("b-2", demand(), team="b", at=1)],
                       quotas=QUOTAS, now=1000))
    assert [x.job_id for x in d.preempt] == ["a2"]
    assert {w.job_id for w in d.wait} == {"b-1", "b-2"}


def test_a_team_s_first_waiting_job_keeps_later_team_jobs_from_taking_its_quota():
    p = pool(gpus=8)
    busy = _busy("a", 0, hours=1)
    quotas = (Quota("a", gpus=4, can_borrow=False), Quota("b", gpus=4))
    jobs = [waiting("a-big", demand(gpus=4), team="a", at=0), waiting("a-long", demand(hours=3), team="a", at=1),
            waiting("a-short", demand(hours=0.5), team="a", at=2)]
    d = schedule(state(p, busy, jobs, quotas=quotas))
    # a-big needs all 4 of a's GPUs once a0 ends (1 h); a-short ends before that, a-long would not.
    assert [a.job_id for a in d.admit] == ["a-short"]
    reasons = {w.job_id: w.detail for w in d.wait}
    assert "first in line for team 'a'" in reasons["a-long"]


def test_a_team_without_a_quota_runs_only_on_borrowed_quota():
    p = pool(gpus=2)
    d = schedule(state(p, [], [waiting("x", demand(), team="guests")], quotas=(Quota("a", gpus=2),)))
    assert [(a.job_id, a.borrowed) for a in d.admit] == [("x", True)]


def test_quota_passed_by_a_job_waiting_for_devices_is_kept_for_it():
    p = pool(gpus=4)
    busy = _busy("b", 0, 1, 2, hours=5)  # b borrows a card from a; a's pair must wait for devices
    jobs = [waiting("a-pair", demand(gpus=2), team="a"), waiting("b-long", demand(hours=10), team="b", at=1),
            waiting("b-short", demand(hours=1), team="b", at=2)]
    d = schedule(state(p, busy, jobs, quotas=QUOTAS, now=0, preemption=False))
    # Card 3 is spare for the pair's devices; a long b job would borrow the quota the pair is owed,
    # a short one ends before the pair can start.
    assert [a.job_id for a in d.admit] == ["b-short"]
    assert {w.job_id: w.reason for w in d.wait} == {"a-pair": "gang", "b-long": "quota"}


def test_a_team_owed_its_quota_takes_it_back_even_for_a_job_that_borrows_a_little():
    p = pool(gpus=4)
    quotas = (Quota("a", gpus=2), Quota("b", gpus=1), Quota("c", gpus=1))
    busy = _busy("a", 0) + _busy("b", 1) + _busy("b", 2, 3, started=60)  # b borrows a's and c's idle quota
    d = schedule(state(p, busy, [waiting("a-pair", demand(gpus=2), team="a", at=100)], quotas=quotas, now=1000))
    # a uses 1 of 2 and needs 2: one GPU of its own quota (lent to b) and one borrowed from c's idle
    # quota (also lent to b). Both are b's borrowed work: it is taken back.
    assert sorted(x.job_id for x in d.preempt) == ["b2", "b3"]
    assert all(x.reason == "quota reclaim" for x in d.preempt)
