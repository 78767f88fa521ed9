"""Fitting one job's demand onto what a pool has free: whole GPUs, shares of a GPU, MIG slices, CPU slots.

Choices keep whole GPUs and whole nodes free for the jobs that need them: a shareable job goes to
the smallest MIG slice that holds it, else to an idle card of the busiest node (reserving only its
memory, so the card can take more shares later), else onto the shared card with the fewest jobs
on it (jobs time-sharing a card slow each other, so this comes last). Whole-GPU and gang jobs take
idle cards on the nodes with the fewest idle cards that still suffice. A gang gets every worker or
nothing.
"""

from __future__ import annotations

from tunewise.jobs.ledger import EPS, GpuInfo, Ledger, PoolIndex, SliceInfo
from tunewise.jobs.schedule_types import Demand, Placement, Slot


def demand_problem(demand: Demand) -> str | None:
    """Why a demand can never be placed anywhere (a malformed request), or None."""
    if demand.gpus < 0 or demand.cpu_slots < 0 or demand.nodes < 1:
        return "asks for a negative number of devices or fewer than one node"
    if demand.gpus and demand.nodes > demand.gpus:
        return f"asks for {demand.nodes} nodes but only {demand.gpus} GPUs: every node needs at least one"
    if demand.gpus == 0 and demand.nodes > 1:
        return "a CPU job runs on one node"
    if demand.shareable and demand.gpus > 1:
        return "only a single-GPU job can share a GPU"
    return None


def cpu_slots_needed(demand: Demand) -> int:
    return max(1, demand.cpu_slots)


def per_node_counts(demand: Demand) -> list[int]:
    """GPUs per worker node, largest first: the total spread as evenly as the node count allows."""
    base, extra = divmod(demand.gpus, demand.nodes)
    return [base + 1] * extra + [base] * (demand.nodes - extra)


def _type_ok(demand: Demand, gpu_type: str) -> bool:
    return demand.gpu_type is None or demand.gpu_type == gpu_type


def place(demand: Demand, ledger: Ledger, *, share_gpus: bool = True) -> Placement | None:
    """A placement for `demand` on the free resources of `ledger`, or None when it does not fit now.

    Pure: the ledger is read, not changed (the caller takes the placement when it admits the job).
    """
    if demand_problem(demand):
        return None
    if demand.gpus == 0:
        return _place_cpu(cpu_slots_needed(demand), ledger)
    if demand.gpus == 1 and demand.shareable:
        return _place_share(demand, ledger, share_gpus)
    if demand.gpus == 1:
        whole = _place_whole(demand, ledger, [1])
        return whole or _place_on_slice(demand, ledger, whole_card_only=True)
    return _place_whole(demand, ledger, per_node_counts(demand))


def _place_cpu(slots: int, ledger: Ledger) -> Placement | None:
    nodes = [(free, order, node) for order, (node, free) in enumerate(ledger.cpu_free.items()) if free >= slots]
    if not nodes:
        return None
    _free, _order, node = min(nodes)  # the tightest fit keeps larger nodes free for larger jobs
    return Placement((Slot(node=node, cpu_slots=slots),))


def _slice_fits(demand: Demand, info: SliceInfo, *, whole_card_only: bool) -> bool:
    if whole_card_only and not info.whole_card:
        return False
    return _type_ok(demand, info.gpu.type) and info.mig.memory_gib >= demand.memory_gib_per_gpu - EPS


def _place_on_slice(demand: Demand, ledger: Ledger, *, whole_card_only: bool) -> Placement | None:
    index = ledger.index
    fits = [info for key, info in index.slices.items()
            if ledger.slice_free[key] and _slice_fits(demand, info, whole_card_only=whole_card_only)]
    if not fits:
        return None
    best = min(fits, key=lambda i: (i.mig.memory_gib, i.node_order, i.gpu.index, i.mig.name))
    return Placement((Slot(node=best.node, gpu=best.gpu.index, mig_slice=best.mig.name, memory_gib=best.mig.memory_gib),))


def _card_fits(demand: Demand, info: GpuInfo) -> bool:
    return _type_ok(demand, info.gpu.type) and info.gpu.memory_gib >= demand.memory_gib_per_gpu - EPS


def _place_share(demand: Demand, ledger: Ledger, share_gpus: bool) -> Placement | None:
    # Training is compute-bound: a job alone on a card (or on a MIG slice, which isolates its share of
    # the compute) runs at full speed, while jobs time-sharing one card slow each other. So a shared
    # card is the last choice, taken only when no MIG slice or idle card fits.
    on_slice = _place_on_slice(demand, ledger, whole_card_only=False)
    if on_slice is not None:
        return on_slice
    need = demand.memory_gib_per_gpu
    whole = _place_whole(demand, ledger, [1])
    if whole is not None:
        slot = whole.slots[0]
        return Placement((Slot(node=slot.node, gpu=slot.gpu, memory_gib=need),)) if share_gpus else whole
    if not share_gpus:
        return None
    shared = [info for key, info in ledger.index.gpus.items()
              if ledger.holders[key] > 0 and ledger.free_gib[key] >= need - EPS and _card_fits(demand, info)]
    if not shared:
        return None
    # The card with the fewest jobs on it: the least contention for its compute.
    best = min(shared, key=lambda i: (ledger.holders[i.key], -ledger.free_gib[i.key], i.node_order, i.gpu.index))
    return Placement((Slot(node=best.node, gpu=best.gpu.index, memory_gib=need),))


def _idle_cards(demand: Demand, ledger: Ledger) -> dict[str, list[GpuInfo]]:
    """Idle cards that can hold one worker of the demand, per node, in index order."""
    out: dict[str, list[GpuInfo]] = {}
    for key, info in ledger.index.gpus.items():
        if ledger.whole_free(key) and _card_fits(demand, info):
            out.setdefault(info.node, []).append(info)
    return out


def _place_whole(demand: Demand, ledger: Ledger, counts: list[int]) -> Placement | None:
    idle = _idle_cards(demand, ledger)
    if sum(len(cards) for cards in idle.values()) < sum(counts):
        return None
    order = {name: i for i, name in enumerate(ledger.index.node_names)}
    used: set[str] = set()
    slots: list[Slot] = []
    for count in counts:  # largest first, each onto the node with the fewest idle cards that suffice
        nodes = [(len(cards), order[node], node) for node, cards in idle.items() if node not in used and len(cards) >= count]
        if not nodes:
            return None  # all or nothing: a gang never starts some of its workers
        _n, _order, node = min(nodes)
        used.add(node)
        slots.extend(Slot(node=node, gpu=info.gpu.index, memory_gib=info.gpu.memory_gib) for info in idle[node][:count])
    return Placement(tuple(slots))


class FitMemo:
    """`place` that remembers which demand shapes found no room in a ledger that only shrinks.

    Within one scheduling pass the free resources only shrink as jobs are admitted, and `place`
    finds a placement whenever one exists, so a shape that did not fit never fits later in the
    pass: a long queue of similar jobs then costs one search per shape, not one per job.
    """

    def __init__(self, share_gpus: bool) -> None:
        self.share_gpus = share_gpus
        self._failed: set[tuple] = set()

    def place(self, demand: Demand, ledger: Ledger, tag: tuple) -> Placement | None:
        """`tag` names the ledger (e.g. ("now", pool)); the caller guarantees it only shrinks."""
        key = (tag, demand.gpus, demand.memory_gib_per_gpu, demand.nodes, demand.gpu_type, demand.shareable,
               demand.cpu_slots)
        if key in self._failed:
            return None
        placement = place(demand, ledger, share_gpus=self.share_gpus)
        if placement is None:
            self._failed.add(key)
        return placement


def devices_usable_by(demand: Demand, index: PoolIndex) -> tuple[set, set, set]:
    """Every device any placement of `demand` could use: (plain GPU keys, slice keys, CPU nodes)."""
    if demand.gpus == 0:
        return set(), set(), {node for node, slots in index.cpu_slots.items() if slots > 0}
    gpus = {key for key, info in index.gpus.items() if _card_fits(demand, info)}
    slices: set = set()
    if demand.gpus == 1:
        slices = {key for key, info in index.slices.items()
                  if _slice_fits(demand, info, whole_card_only=not demand.shareable)}
    return gpus, slices, set()
