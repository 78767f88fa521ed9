"""Threads acting as the ranks of a job, for tests of protocols that only need broadcast and gather."""

from __future__ import annotations

import threading
from pathlib import Path

from tunewise.errors import CheckpointError
from tunewise.train.checkpoint import CheckpointManager
from tunewise.train.state_sharded import owner_rank


class ThreadRanks:
    """`world` threads acting as ranks: broadcast and gather through shared slots and a barrier."""

    def __init__(self, world: int):
        self.world = world
        self._barrier = threading.Barrier(world, timeout=30)
        self._slots: list = [None] * world

    def rank(self, rank: int) -> _Rank:
        return _Rank(self, rank)


class _Rank:
    def __init__(self, group: ThreadRanks, rank: int):
        self.group, self.rank, self.world = group, rank, group.world

    def broadcast(self, obj):
        if self.rank == 0:
            self.group._slots[0] = obj
        self.group._barrier.wait()
        value = self.group._slots[0]
        self.group._barrier.wait()
        return value

    def gather(self, obj):
        self.group._slots[self.rank] = obj
        self.group._barrier.wait()
        out = list(self.group._slots) if self.rank == 0 else None
        self.group._barrier.wait()
        return out


def write_shards(folder: Path, world: int) -> Path:
    """What `world` ranks of one machine write into their shared staging directory."""
    for rank in range(world):
        (folder / "dcp").mkdir(parents=True, exist_ok=True)
        (folder / "dcp" / f"__{rank}_0.distcp").write_bytes(bytes([rank]) * (1000 + rank))
        (folder / "rng").mkdir(exist_ok=True)
        (folder / "rng" / f"rank-{rank}.pt").write_bytes(b"rng%d" % rank)
    (folder / "dcp" / ".metadata").write_bytes(b"meta")
    (folder / "state.json").write_text('{"step": 1}')
    return folder


def save_on_threads(manager: CheckpointManager, step: int, folders: list[Path]) -> list:
    group = ThreadRanks(len(folders))
    results: list = [None] * len(folders)

    def run(rank: int) -> None:
        ranks = group.rank(rank)
        try:
            results[rank] = manager.save_sharded(step, folders[rank], {"val_loss": 1.0}, ranks=ranks,
                                                 owns=lambda rel: owner_rank(rel) == rank)
        except CheckpointError as err:
            results[rank] = err

    threads = [threading.Thread(target=run, args=(r,)) for r in range(len(folders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
