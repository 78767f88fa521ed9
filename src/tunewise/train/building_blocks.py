"""The public pieces every trainer builds on: the supervised session, the TRL alignment session and
our own PPO loop all use these, and none reaches into another's internals.

A run's result and its `status.json`, seeding, parameter counts, and the optimizer with its
learning-rate schedule as the spec's `train` section sets them. Durable checkpoints
(`train.checkpoint.CheckpointManager`), the metrics file (`train.metrics_log.MetricsLog`) and the
resume state of our own loops (`train.state.LoopState`) are public modules of their own.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunewise.spec import JobSpec


@dataclass
class RunResult:
    """What a trainer returns: where the run is, how it ended and at which step."""

    run_dir: Path
    state: str  # completed | failed
    steps: int
    resumed_from: int | None = None
    already_done: bool = False


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's `status.json` as a dict; empty before the run first wrote it."""
    path = Path(run_dir) / "status.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_status(run_dir: Path, **fields: Any) -> None:
    """Merge `fields` into `status.json`, atomically (written aside, then renamed)."""
    status = {**read_status(run_dir), **fields}
    tmp = Path(run_dir) / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2))
    os.replace(tmp, Path(run_dir) / "status.json")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators: a run's samples and initialisation follow its seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) as peft counts them (4-bit weights count at their real size)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def parameter_summary(method: str, model: Any) -> str:
    """The line every trainer prints once its model is built: trainable and total parameters."""
    trainable, total = count_parameters(model)
    return (f"method [bold]{method}[/]: trainable params: {trainable:,} || all params: {total:,} "
            f"|| trainable%: {100 * trainable / max(total, 1):.4f}")


def optimizer_and_scheduler(spec: JobSpec, model: Any, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the trainable parameters and the spec's learning-rate schedule over `total_steps`.

    The learning rate is the spec's, else the method's default; warm-up is `train.warmup_ratio` of
    the optimizer steps.
    """
    import math

    import torch
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.resolved_learning_rate(), weight_decay=spec.train.weight_decay)
    warmup = math.ceil(spec.train.warmup_ratio * total_steps)
    scheduler = get_scheduler(spec.train.lr_scheduler, optimizer, num_warmup_steps=warmup,
                              num_training_steps=total_steps)
    return optimizer, scheduler
