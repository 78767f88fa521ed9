"""End to end on the bundled SmolLM2-135M: held-out exact match rises after a short LoRA run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from make_demo_data import generate  # noqa: E402

from tunewise.models import resolve_device_policy  # noqa: E402
from tunewise.models.artifact import load_artifact  # noqa: E402
from tunewise.models.generate import generate_replies  # noqa: E402
from tunewise.models.load import load_causal_lm, load_tokenizer  # noqa: E402
from tunewise.spec import load_spec  # noqa: E402
from tunewise.train.run import run_training_job  # noqa: E402


def _exact_match(model, tokenizer, rows) -> float:
    replies = generate_replies(model, tokenizer, [r["messages"][:-1] for r in rows], max_new_tokens=20)
    return sum(a == r["messages"][-1]["content"] for a, r in zip(replies, rows)) / len(rows)


@pytest.mark.slow
def test_lora_on_bundled_model_raises_exact_match(bundled_model_dir, tmp_path):
    train_path, test_path = generate(tmp_path, seed=11, train=96, test=12)
    rows = [json.loads(line) for line in test_path.read_text().splitlines()]
    policy = resolve_device_policy("cpu", "fp32")
    tokenizer = load_tokenizer(bundled_model_dir)
    before = _exact_match(load_causal_lm(bundled_model_dir, policy).eval(), tokenizer, rows)

    spec = load_spec(raw={
        "name": "e2e-lora",
        "method": {"name": "lora", "r": 8},
        "data": {"train": str(train_path), "max_length": 256, "val_fraction": 0.1},
        "train": {"max_steps": 8, "learning_rate": 1e-3, "micro_batch_size": 4, "precision": "fp32", "device": "cpu"},
        "checkpoint": {"every_steps": 8},
        # The demo covers evaluation on the bundled model; here the test measures exact match itself.
        "eval": {"enabled": False},
        "tracking": {"enabled": False},
    })
    result = run_training_job(spec)
    model, tuned_tokenizer, _ = load_artifact(result.run_dir, policy)
    after = _exact_match(model, tuned_tokenizer, rows)
    assert before <= 0.1
    assert after >= 0.5 and after > before, (before, after)
