"""Plain words for what a job asks and what a pool has free: the detail of every wait decision."""

from __future__ import annotations

from collections import Counter

from tunewise.jobs.ledger import Ledger, PoolIndex
from tunewise.jobs.placement import cpu_slots_needed
from tunewise.jobs.schedule_types import Demand


def gib(value: float) -> str:
    return f"{value:.3g} GiB" if value < 100 else f"{value:.0f} GiB"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_demand(demand: Demand) -> str:
    """'2 GPUs with 40 GiB each on 1 node', 'a 12 GiB share of a GPU or a MIG slice', '1 CPU slot'."""
    if demand.gpus == 0:
        return _plural(cpu_slots_needed(demand), "CPU slot")
    kind = f" {demand.gpu_type}" if demand.gpu_type else ""
    if demand.shareable:
        return f"a {gib(demand.memory_gib_per_gpu)} share of a{kind} GPU or a MIG slice that large"
    memory = f" with {gib(demand.memory_gib_per_gpu)} each" if demand.memory_gib_per_gpu else ""
    if demand.gpus == 1:
        return f"1 whole{kind} GPU{' with ' + gib(demand.memory_gib_per_gpu) if demand.memory_gib_per_gpu else ''}"
    return f"{demand.gpus}{kind} GPUs{memory} on {_plural(demand.nodes, 'node')}, started together"


def describe_pool(index: PoolIndex) -> str:
    """'4 nodes; 28 GPUs (h100-80gb 79.1 GiB); 8 MIG slices (3g.40gb x4, ...); 2 CPU slots'."""
    cards = Counter((i.gpu.type, i.gpu.memory_gib) for i in index.gpus.values())
    parts = [_plural(len(index.node_names), "node")]
    if cards:
        kinds = ", ".join(f"{t} {gib(m)} x{n}" for (t, m), n in sorted(cards.items()))
        parts.append(f"whole GPUs: {kinds}")
    if index.slices:
        profiles = Counter(s.mig.profile for s in index.slices.values())
        parts.append("MIG slices: " + ", ".join(f"{p} x{n}" for p, n in sorted(profiles.items())))
    cpu = sum(index.cpu_slots.values())
    if cpu:
        parts.append(_plural(cpu, "CPU slot"))
    return "; ".join(parts)


def describe_free(demand: Demand, ledger: Ledger) -> str:
    """What is free now that matters to this demand, e.g. '3 idle GPUs, at most 2 on one node'."""
    if demand.gpus == 0:
        return f"{_plural(max(ledger.cpu_free.values(), default=0), 'CPU slot')} free on the emptiest node"
    idle: Counter[str] = Counter()
    for key, info in ledger.index.gpus.items():
        if ledger.whole_free(key) and (demand.gpu_type in (None, info.gpu.type)):
            idle[info.node] += 1
    total = sum(idle.values())
    words = f"{_plural(total, 'idle GPU')}"
    if demand.gpus > 1 and total:
        words += f", at most {max(idle.values())} on one node"
    if demand.gpus == 1 and demand.shareable:
        most = max(ledger.free_gib.values(), default=0.0)
        free_slices = [ledger.index.slices[k].mig.memory_gib for k, free in ledger.slice_free.items() if free]
        words += f"; most memory free on one GPU: {gib(max(most, 0.0))}"
        if free_slices:
            words += f"; largest free MIG slice: {gib(max(free_slices))}"
    return words
