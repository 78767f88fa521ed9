"""What is free in one pool: memory per plain GPU, which MIG slices are free, CPU slots per node.

A `Ledger` is a mutable scratch copy the scheduler takes placements from and gives them back to
while it decides; the pool itself (frozen data) never changes. Memory is in GiB. A whole-GPU job
takes all of a card's memory; a share takes only its reservation, so several shares sit on one card.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.jobs.schedule_types import Gpu, MigSlice, Placement, Pool, Slot

EPS = 1e-6  # GiB: float sums of reservations must not refuse an exact fit

GpuKey = tuple[str, int]  # (node, gpu index)
SliceKey = tuple[str, str]  # (node, slice name)


@dataclass(frozen=True)
class GpuInfo:
    node: str
    node_order: int  # position of the node in the pool: the deterministic tie-break
    gpu: Gpu

    @property
    def key(self) -> GpuKey:
        return (self.node, self.gpu.index)

    @property
    def partitioned(self) -> bool:
        return bool(self.gpu.mig_slices)


@dataclass(frozen=True)
class SliceInfo:
    node: str
    node_order: int
    gpu: Gpu
    mig: MigSlice

    @property
    def key(self) -> SliceKey:
        return (self.node, self.mig.name)

    @property
    def whole_card(self) -> bool:
        """A slice that is the whole card (7g on an H100): usable as a whole GPU by one job."""
        return self.mig.memory_gib >= self.gpu.memory_gib - EPS or self.mig.compute_fraction >= 1 - EPS


class PoolIndex:
    """The static facts of a pool, looked up by key: built once per scheduling pass."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.node_names = tuple(node.name for node in pool.nodes)
        self.gpus: dict[GpuKey, GpuInfo] = {}
        self.slices: dict[SliceKey, SliceInfo] = {}
        self.cpu_slots: dict[str, int] = {}
        for order, node in enumerate(pool.nodes):
            self.cpu_slots[node.name] = node.cpu_slots
            for gpu in node.gpus:
                if gpu.mig_slices:
                    for mig in gpu.mig_slices:
                        self.slices[(node.name, mig.name)] = SliceInfo(node.name, order, gpu, mig)
                else:
                    self.gpus[(node.name, gpu.index)] = GpuInfo(node.name, order, gpu)
        self._gpu_of_slice = {key: info.gpu for key, info in self.slices.items()}

    def empty_ledger(self) -> Ledger:
        return Ledger(self, {k: g.gpu.memory_gib for k, g in self.gpus.items()}, dict.fromkeys(self.gpus, 0),
                      dict.fromkeys(self.slices, True), dict(self.cpu_slots))

    def card_memory(self, slot: Slot) -> float | None:
        """Memory of the physical card a slot is on (None for CPU slots or a device not in the pool)."""
        if slot.gpu is None:
            return None
        if slot.mig_slice is not None:
            gpu = self._gpu_of_slice.get((slot.node, slot.mig_slice))
            return gpu.memory_gib if gpu else None
        info = self.gpus.get((slot.node, slot.gpu))
        return info.gpu.memory_gib if info else None

    def compute_share(self, placement: Placement) -> float:
        """The slowest worker's share of a card's compute: a MIG slice runs a job at its fraction."""
        shares = [self.slices[(s.node, s.mig_slice)].mig.compute_fraction
                  for s in placement.slots if s.mig_slice is not None and (s.node, s.mig_slice) in self.slices]
        return min(shares, default=1.0) or 1.0


class Ledger:
    """Free resources of one pool at one moment; `take` and `give` move placements in and out."""

    def __init__(self, index: PoolIndex, free_gib: dict[GpuKey, float], holders: dict[GpuKey, int],
                 slice_free: dict[SliceKey, bool], cpu_free: dict[str, int]) -> None:
        self.index = index
        self.free_gib = free_gib  # plain GPUs: memory not reserved
        self.holders = holders  # plain GPUs: jobs holding part or all of the card
        self.slice_free = slice_free
        self.cpu_free = cpu_free

    def copy(self) -> Ledger:
        return Ledger(self.index, dict(self.free_gib), dict(self.holders), dict(self.slice_free), dict(self.cpu_free))

    def take(self, placement: Placement) -> None:
        self._apply(placement, -1)

    def give(self, placement: Placement) -> None:
        self._apply(placement, +1)

    def _apply(self, placement: Placement, sign: int) -> None:
        # Slots on devices the pool no longer declares are ignored: nothing here can hold them.
        for slot in placement.slots:
            if slot.gpu is None:
                if slot.node in self.cpu_free:
                    self.cpu_free[slot.node] += sign * slot.cpu_slots
            elif slot.mig_slice is not None:
                key = (slot.node, slot.mig_slice)
                if key in self.slice_free:
                    self.slice_free[key] = sign > 0
            else:
                key = (slot.node, slot.gpu)
                if key in self.free_gib:
                    self.free_gib[key] += sign * slot.memory_gib
                    self.holders[key] -= sign

    def whole_free(self, key: GpuKey) -> bool:
        """No job on the card at all: it can go to a whole-GPU job."""
        return self.holders[key] <= 0 and self.free_gib[key] >= self.index.gpus[key].gpu.memory_gib - EPS

    def intersect(self, other: Ledger) -> Ledger:
        """What is free in both: the resources a job may take now without touching a later reservation."""
        return Ledger(
            self.index,
            {k: min(v, other.free_gib[k]) for k, v in self.free_gib.items()},
            {k: max(v, other.holders[k]) for k, v in self.holders.items()},
            {k: v and other.slice_free[k] for k, v in self.slice_free.items()},
            {k: min(v, other.cpu_free[k]) for k, v in self.cpu_free.items()},
        )

    def without(self, gpus: set[GpuKey], slices: set[SliceKey], cpu_nodes: set[str]) -> Ledger:
        """A copy with the named devices marked fully in use."""
        out = self.copy()
        for key in gpus:
            out.free_gib[key] = 0.0
            out.holders[key] = max(out.holders[key], 1)
        for key in slices:
            out.slice_free[key] = False
        for node in cpu_nodes:
            out.cpu_free[node] = 0
        return out
