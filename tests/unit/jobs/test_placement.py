"""Fitting demands onto what is free: GPU shares by memory, MIG slices, whole cards, gangs, CPU slots."""

from __future__ import annotations

from tests.unit.jobs.builders import demand, pool, running, share, state, waiting, whole
from tunewise.jobs.scheduler import schedule

MIG_3_4 = {0: [("3g.40gb", 40.0, 3 / 7), ("4g.40gb", 40.0, 4 / 7)]}


def _admitted(decisions) -> dict:
    return {a.job_id: a.placement for a in decisions.admit}


def test_small_jobs_share_a_card_by_memory_when_no_card_is_idle():
    p = pool(gpus=2)
    busy = [running("big", demand(), whole("n0", 0))]  # card 0 taken whole
    jobs = [waiting(f"s{i}", demand(gib=30, shareable=True), at=i) for i in range(3)]
    d = schedule(state(p, busy, jobs))
    placed = _admitted(d)
    assert set(placed) == {"s0", "s1"}  # 30 + 30 of 80 GiB on card 1; a third 30 would not fit
    assert all(pl.slots[0].gpu == 1 and pl.slots[0].memory_gib == 30 for pl in placed.values())
    (wait,) = d.wait
    assert wait.job_id == "s2" and wait.reason == "memory" and "30 GiB share" in wait.detail


def test_a_share_prefers_an_idle_card_and_a_whole_job_never_takes_a_shared_one():
    p = pool(gpus=2)
    d = schedule(state(p, [running("small", demand(gib=20, shareable=True), share("n0", 0, 20))],
                       [waiting("s", demand(gib=20, shareable=True)), waiting("w", demand(gib=10), at=1)]))
    placed = _admitted(d)
    assert placed["s"].slots[0].gpu == 1  # the idle card first: time-sharing slows both jobs
    assert "w" not in placed  # 40 GiB are free on each card, but a whole-GPU job needs an idle card
    assert d.wait[0].reason == "memory"


def test_a_shareable_job_takes_the_smallest_mig_slice_that_holds_it():
    p = pool(gpus=2, mig={0: [("1g.10gb", 10.0, 1 / 7), ("3g.40gb", 40.0, 3 / 7), ("2g.20gb", 20.0, 2 / 7)]})
    d = schedule(state(p, [], [waiting("q", demand(gib=15, shareable=True))]))
    (slot,) = _admitted(d)["q"].slots
    assert slot.mig_slice == "gpu0/mig2" and slot.memory_gib == 20.0  # 2g.20gb: the smallest slice >= 15 GiB


def test_mig_slices_hold_only_jobs_that_fit_them_and_only_shareable_ones():
    p = pool(gpus=1, mig=MIG_3_4)  # the only card is partitioned
    jobs = [waiting("too-big", demand(gib=50, shareable=True)), waiting("whole", demand(gib=30), at=1),
            waiting("fits", demand(gib=35, shareable=True), at=2)]
    d = schedule(state(p, [], jobs))
    assert set(_admitted(d)) == {"fits"}
    reasons = {w.job_id: w.reason for w in d.wait}
    assert reasons == {"too-big": "capacity", "whole": "capacity"}  # this pool can never hold either


def test_a_whole_card_mig_slice_serves_a_whole_gpu_job():
    p = pool(gpus=1, mig={0: [("7g.80gb", 80.0, 1.0)]})
    d = schedule(state(p, [], [waiting("w", demand(gib=70))]))
    assert _admitted(d)["w"].slots[0].mig_slice == "gpu0/mig0"


def test_a_gang_starts_all_at_once_or_not_at_all():
    p = pool(nodes=2, gpus=4)
    busy = [running("a", demand(), whole("n0", 0)), running("b", demand(), whole("n1", 0))]  # 3 idle per node
    d = schedule(state(p, busy, [waiting("gang", demand(gpus=4))]))
    assert d.admit == ()  # 6 cards are idle, but not 4 on one node: no worker starts
    (wait,) = d.wait
    assert wait.reason == "gang" and "6 idle GPUs, at most 3 on one node" in wait.detail


def test_a_multi_node_gang_gets_every_worker_on_distinct_nodes():
    p = pool(nodes=3, gpus=4)
    d = schedule(state(p, [running("a", demand(), whole("n1", 0))], [waiting("gang", demand(gpus=8, nodes=2))]))
    (slots,) = [pl.slots for pl in _admitted(d).values()]
    assert len(slots) == 8
    per_node = {node: sum(1 for s in slots if s.node == node) for node in {s.node for s in slots}}
    assert sorted(per_node.values()) == [4, 4] and "n1" not in per_node  # n1 has only 3 idle cards


def test_gangs_pack_onto_the_fullest_nodes_that_fit():
    p = pool(nodes=2, gpus=4)
    d = schedule(state(p, [running("a", demand(), whole("n1", 0))], [waiting("pair", demand(gpus=2))]))
    assert {s.node for s in _admitted(d)["pair"].slots} == {"n1"}  # n0 stays whole for a 4-GPU gang


def test_cpu_jobs_take_cpu_slots():
    p = pool(nodes=1, gpus=0, cpu_slots=2)
    jobs = [waiting(f"c{i}", demand(gpus=0, gib=0), at=i) for i in range(3)]
    d = schedule(state(p, [], jobs))
    assert set(_admitted(d)) == {"c0", "c1"}
    assert all(pl.slots[0].gpu is None and pl.slots[0].cpu_slots == 1 for pl in _admitted(d).values())
    assert d.wait[0].job_id == "c2" and d.wait[0].reason == "capacity"


def test_gpu_type_and_memory_are_respected():
    p = pool(gpus=2)
    d = schedule(state(p, [], [waiting("a100", demand(gpu_type="a100-80gb")), waiting("huge", demand(gib=90), at=1)]))
    assert d.admit == ()
    details = {w.job_id: w.detail for w in d.wait}
    assert all(w.reason == "capacity" for w in d.wait)
    assert "can never hold that" in details["a100"] and "h100-80gb" in details["a100"]
