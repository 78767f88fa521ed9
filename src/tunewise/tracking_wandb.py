"""Weights & Biases as a `report_to` target: our only touch point with the `wandb` package.

A run resumed after a pause, a preemption or a crash continues the same W&B run: its id is kept in
the run directory (`wandb_run_id`). `WANDB_MODE=offline` and the other WANDB_* variables apply as
wandb documents them.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUN_ID_FILE = "wandb_run_id"


class WandbSpec(BaseModel):
    """The `tracking.wandb` section: where a `report_to: [wandb]` run goes (OpenAI's wandb integration)."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, max_length=200, description="W&B project (default: the MLflow experiment name).")
    name: str | None = Field(None, max_length=200, description="Display name of the run (default: the run's name).")
    entity: str | None = Field(None, max_length=200, description="W&B team or user (default: yours).")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Tags on the W&B run.")


def _new_run_id() -> str:
    # W&B run ids: eight lowercase letters and digits, as wandb makes them.
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def open_wandb_run(run_dir: Path, options: WandbSpec, experiment: str, config: dict[str, Any]) -> Any:
    """Start (or resume) the W&B run of `run_dir`; files under run_dir/wandb."""
    import wandb

    id_file = run_dir / RUN_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else _new_run_id()
    run = wandb.init(project=options.project or experiment, name=options.name or run_dir.name,
                     entity=options.entity, tags=options.tags or None, config=config, dir=str(run_dir),
                     id=run_id, resume="allow", reinit="create_new")
    id_file.write_text(run_id + "\n")
    return run
