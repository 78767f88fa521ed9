"""The train stage: JobSpec in, a run directory with metrics, checkpoints and an artifact out.

Re-running the same command resumes the same run from its newest complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import SpecError
from tunewise.spec import JobSpec
from tunewise.workspace import runs_dir

console = Console(stderr=True)


@dataclass
class RunResult:
    run_dir: Path
    state: str  # completed | failed
    steps: int
    resumed_from: int | None = None
    already_done: bool = False


def run_name_for(spec: JobSpec, spec_path: str | Path | None) -> str:
    """The spec's name, else `<file stem>-<content hash>`: the same command finds the same run."""
    if spec.name:
        return spec.name
    stem = Path(spec_path).stem if spec_path else "job"
    return f"{stem}-{spec.content_hash()}"


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "status.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_status(run_dir: Path, **fields: Any) -> None:
    status = {**read_status(run_dir), **fields}
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2))
    os.replace(tmp, run_dir / "status.json")


def resolved_spec(spec: JobSpec) -> JobSpec:
    """Fill the method-dependent defaults so the stored spec shows what actually ran."""
    resolved = spec.model_copy(deep=True)
    resolved.train.learning_rate = spec.resolved_learning_rate()
    cfg = spec.method_config()
    if getattr(cfg, "alpha", "absent") is None:
        setattr(resolved.method, "alpha", cfg.resolved_alpha)
    return resolved


def prepare_run_dir(spec: JobSpec, spec_path: str | Path | None, restart: bool) -> tuple[Path, bool]:
    """Create or reopen the run directory. Returns (run_dir, already_completed)."""
    run_dir = runs_dir() / run_name_for(spec, spec_path)
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    stored = run_dir / "spec.yaml"
    if stored.is_file():
        from tunewise.spec import load_spec

        previous = load_spec(stored)
        if previous.content_hash() != resolved_spec(spec).content_hash():
            raise SpecError(
                f"run {run_dir.name!r} already exists with a different spec",
                hint="give the job another name, or pass --restart to discard the old run",
            )
        return run_dir, read_status(run_dir).get("state") == "completed"
    run_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(resolved_spec(spec).to_yaml())
    return run_dir, False


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_training_job(spec: JobSpec, *, spec_path: str | Path | None = None, restart: bool = False) -> RunResult:
    """Plan, prepare data, train (resuming if possible), write the artifact."""
    run_dir, done = prepare_run_dir(spec, spec_path, restart)
    if done:
        console.print(f"run [bold]{run_dir.name}[/] is already complete: {run_dir}")
        return RunResult(run_dir, "completed", read_status(run_dir).get("step", 0), already_done=True)
    write_status(run_dir, state="running", method=spec.method.name, base_model=spec.base_model,
                 started_at=read_status(run_dir).get("started_at", time.time()), pid=os.getpid())
    try:
        from tunewise.methods import get_method
        from tunewise.train.session import TrainingSession

        method = get_method(spec.method.name)
        if method.trainer is not None:
            result = method.trainer(resolved_spec(spec), run_dir)
        else:
            result = TrainingSession(resolved_spec(spec), run_dir).run()
    except BaseException as err:
        write_status(run_dir, state="failed", error=str(err).splitlines()[0] if str(err) else type(err).__name__,
                     finished_at=time.time())
        raise
    write_status(run_dir, state="completed", step=result.steps, finished_at=time.time())
    return result
