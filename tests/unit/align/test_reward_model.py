"""A reward run is a scorer, not a language model: no perplexity evaluation, no loading as a causal LM."""

from __future__ import annotations

import pytest

from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.errors import ModelError
from tunewise.models import resolve_device_policy
from tunewise.models.artifact import load_artifact
from tunewise.spec import load_spec
from tunewise.train.run import read_status, run_training_job


def test_the_evaluation_after_training_skips_a_reward_model_and_says_why(tiny_model_dir):
    raw = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "reward", steps=1) | {"eval": {"enabled": True}}
    result = run_training_job(load_spec(raw=raw))
    status = read_status(result.run_dir)
    assert result.state == status["state"] == "completed"
    assert "reward model" in status["eval_skipped"] and "val_preference_accuracy" in status["eval_skipped"]
    assert not (result.run_dir / "eval.json").exists()


def test_load_artifact_refuses_a_reward_model_and_names_the_loader(reward_run):
    with pytest.raises(ModelError, match="cannot be loaded as a causal language model") as caught:
        load_artifact(reward_run, resolve_device_policy("cpu", "fp32"))
    assert "tunewise.align.reward_model.load_reward_model" in caught.value.hint
