"""DPO learns a separable preference and resumes exactly from its durable checkpoint."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::tunewise.spec.SpecWarning")

from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.spec import load_spec
from tunewise.train.run import read_status, run_training_job
from tunewise.workspace import runs_dir


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_dpo_loss_falls_on_a_separable_preference_set(tiny_model_dir):
    # Chosen answers are one short sentence, rejected ones long: separable from the first tokens.
    spec = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", steps=6, lora={"r": 8},
                      train={"micro_batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0})
    rows = _rows(run_training_job(load_spec(raw=spec)).run_dir)
    first, last = rows[0], rows[-1]
    assert first["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    losses = [r["train_loss"] for r in rows]
    assert losses == sorted(losses, reverse=True) and last["train_loss"] < 0.6, losses
    assert last["reward_margin"] > first["reward_margin"]
    assert last["preference_accuracy"] >= 0.75 and last["val_preference_accuracy"] >= 0.75
    assert 0 < last["kl_ref"] < 1.0  # moved away from the reference, but not far


def test_dpo_resumes_from_its_checkpoint_after_a_crash(tiny_model_dir, monkeypatch):
    from tunewise.align.callbacks import RunDirCallback

    spec = load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", steps=4, name="t-resume"))
    original = RunDirCallback.on_save

    def crash_after_first_save(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        raise KeyboardInterrupt("simulated kill after the step-2 checkpoint")

    monkeypatch.setattr(RunDirCallback, "on_save", crash_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        run_training_job(spec)
    monkeypatch.setattr(RunDirCallback, "on_save", original)

    result = run_training_job(spec)
    assert result.resumed_from == 2 and result.steps == 4
    assert [r["step"] for r in _rows(result.run_dir)] == [1, 2, 3, 4]
    assert read_status(result.run_dir)["state"] == "completed"
    assert [p.name for p in (result.run_dir / "checkpoints").iterdir()] == ["step-00000004"]


def test_dpo_that_cannot_fit_is_refused_before_any_model_loads(tiny_model_dir, monkeypatch):
    from tunewise.errors import TunewiseError
    from tunewise.models import load

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the memory check")

    monkeypatch.setattr(load, "load_causal_lm", no_loading)
    spec = load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", train={"memory_limit_gb": 0.001}))
    with pytest.raises(TunewiseError, match="does not fit: estimated peak .* but only 0.00 GiB available") as caught:
        run_training_job(spec)
    assert "dpo, seq 96 x micro-batch 2" in caught.value.message and "method.adapter" in caught.value.hint
    assert read_status(runs_dir() / spec.name)["state"] == "failed"
