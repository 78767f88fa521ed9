"""Every registered supervised method trains a few steps on the tiny model and writes a loadable artifact."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.methods import all_methods
from tunewise.models import resolve_device_policy
from tunewise.models.artifact import load_artifact
from tunewise.spec import SpecWarning, load_spec
from tunewise.train.run import run_training_job

SFT_METHODS = [m.name for m in all_methods() if m.kind == "sft"]


@pytest.mark.parametrize("method", SFT_METHODS)
def test_method_trains_and_writes_loadable_artifact(method, tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    spec = load_spec(raw=tiny_spec(tiny_model_dir, data, method))
    result = run_training_job(spec)

    assert result.state == "completed" and result.steps == 3
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["train_loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    assert "val_loss" in rows[-1]
    info = json.loads((result.run_dir / "artifact" / "tunewise.json").read_text())
    assert info["method"] == method

    model, tokenizer, loaded = load_artifact(result.run_dir, resolve_device_policy("cpu", "fp32"))
    assert loaded.adapter == (method != "full")
    ids = tokenizer("hello there", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert torch.isfinite(logits).all()


def test_training_lowers_loss(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    with pytest.warns(SpecWarning, match="outside the usual"):  # a large step: a tiny model learns in 30 steps
        spec = load_spec(raw=tiny_spec(tiny_model_dir, data, "full", max_steps=30, learning_rate=3e-3))
    result = run_training_job(spec)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["train_loss"] for r in rows[:3]) / 3
    last = sum(r["train_loss"] for r in rows[-3:]) / 3
    assert last < first * 0.7, (first, last)


def test_gradient_checkpointing_and_accumulation(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    raw = tiny_spec(tiny_model_dir, data, "lora", max_steps=2, gradient_accumulation=2, micro_batch_size=1,
                    gradient_checkpointing=True)
    raw["data"]["packing"] = False
    result = run_training_job(load_spec(raw=raw))
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["grad_norm"] > 0 for r in rows)
