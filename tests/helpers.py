"""Small builders shared by tests: chat datasets and job specs on the tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_chat_dataset(path: Path, rows: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda", "zeta"]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            a, b = rng.sample(words, 2)
            n = rng.randint(0, 999)
            row = {"messages": [
                {"role": "user", "content": f"Item {i}: join {a} and {b} with number {n}."},
                {"role": "assistant", "content": f"{a}-{b}-{n}"},
            ]}
            fh.write(json.dumps(row) + "\n")
    return path


def tiny_spec(model_dir: Path, data: Path, method: str = "lora", **train) -> dict:
    return {
        "name": f"test-{method}",
        "base_model": str(model_dir),
        "method": {"name": method},
        "data": {"train": str(data), "max_length": 128, "val_fraction": 0.1},
        "train": {"max_steps": 3, "micro_batch_size": 4, "seed": 1, "precision": "fp32", "device": "cpu", **train},
        "checkpoint": {"every_steps": 2, "keep_best": 1, "keep_last": 1},
        # Evaluation and tracking have their own tests; most training tests skip them for speed.
        "eval": {"enabled": False},
        "tracking": {"enabled": False},
    }
