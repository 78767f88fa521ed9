"""How a run of several processes batches and shards, decided once and kept in `batch_plan.json`.

An optimizer step takes `gradient_accumulation x world_size` micro-batches of the one data stream
(train/loop.py). A run that resumes on another number of processes keeps that count, and so the
step's batch, the learning-rate schedule and the data position: only the accumulation per process
changes (4 micro-batches a step: 1 process x 4, 2 x 2 or 4 x 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import TunewiseError
from tunewise.train.distributed import Ranks

console = Console(stderr=True)


def rebatch_for_world(stored: Path, world: int) -> tuple[int, int]:
    """(micro-batch, accumulation per process) for `world` processes from a run's stored batch plan.

    Rewrites the file when the number of processes changed. Raises when the step's micro-batches
    cannot be shared evenly among `world` processes.
    """
    saved = json.loads(stored.read_text())
    micro = int(saved["micro_batch_size"])
    was = int(saved.get("world_size", 1))
    per_step = int(saved["gradient_accumulation"]) * was
    if world == was:
        return micro, per_step // world
    if per_step % world:
        fitting = [n for n in range(1, per_step + 1) if per_step % n == 0]
        raise TunewiseError(
            f"this run's optimizer step is {per_step} micro-batches of {micro} sequences (written by {was} "
            f"process{'es' if was > 1 else ''}); {world} processes cannot share them evenly",
            hint=f"resume with a number of processes that divides {per_step}: {', '.join(map(str, fitting))}")
    accumulation = per_step // world
    console.print(f"resuming on {world} process{'es' if world > 1 else ''} instead of {was}: accumulation "
                  f"{accumulation} per process keeps the step at {per_step} micro-batches of {micro}")
    stored.write_text(json.dumps({**saved, "gradient_accumulation": accumulation, "world_size": world}))
    return micro, accumulation


def choose_run_strategy(spec: Any, base_dir: Path, policy: Any, ranks: Ranks, adapter: bool) -> tuple[str, str]:
    """(strategy for train/parallel.py, the sharding the memory plan assumes: none, zero2 or zero3)."""
    from tunewise.plan.fit import planned_sharding
    from tunewise.train.parallel import choose_strategy

    resources = spec.resources
    if not ranks.distributed:
        return "single", "none"
    planned = None
    if resources.sharding == "auto":
        sharers = ranks.local_world if policy.device == "cpu" else 1
        planned = planned_sharding(spec, base_dir, policy, num_gpus=ranks.world, sharers=sharers)
    strategy = choose_strategy(resources.sharding, resources.engine, world=ranks.world, adapter=adapter,
                               planned=planned)
    return strategy, _memory_class(strategy)


def _memory_class(strategy: str) -> str:
    if strategy in ("fsdp", "deepspeed-zero3"):
        return "zero3"
    if strategy in ("fsdp-zero2", "deepspeed-zero2"):
        return "zero2"
    return "none"
