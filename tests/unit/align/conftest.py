"""Fixtures for the alignment tests: fixture files, spec builder, and one tiny reward model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "align"


def align_spec(model_dir: Path, data: Path, method: str, *, steps: int = 2, name: str | None = None,
               train: dict | None = None, **options) -> dict:
    """A job spec for `method` on the tiny model: CPU, fp32, a couple of steps, checkpoint at the end,
    no evaluation stage or tracking afterwards."""
    return {
        "name": name or f"t-{method}",
        "base_model": str(model_dir),
        "method": {"name": method, **options},
        "data": {"train": str(data), "max_length": 96, "val_fraction": 0.2},
        "train": {"max_steps": steps, "micro_batch_size": 2, "seed": 1, "precision": "fp32", "device": "cpu",
                  "learning_rate": 5e-4, **(train or {})},
        "checkpoint": {"every_steps": 2, "keep_best": 1, "keep_last": 1},
        # The eval stage and MLflow tracking after training have their own tests; these test training.
        "eval": {"enabled": False},
        "tracking": {"enabled": False},
    }


@pytest.fixture(scope="session")
def reward_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A reward model trained two steps on the tiny model (its own workspace), shared by the RL tests."""
    from tunewise.spec import load_spec
    from tunewise.train.run import run_training_job

    home = tmp_path_factory.mktemp("reward-home")
    previous = os.environ.get("TUNEWISE_HOME")
    os.environ["TUNEWISE_HOME"] = str(home)
    try:
        spec = load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "reward", name="t-reward-model"))
        result = run_training_job(spec)
    finally:
        if previous is None:
            os.environ.pop("TUNEWISE_HOME", None)
        else:
            os.environ["TUNEWISE_HOME"] = previous
    return result.run_dir
