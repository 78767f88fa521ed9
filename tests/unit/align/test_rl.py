"""PPO and GRPO end to end on the tiny model, scored by a tiny reward model or a rule."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.errors import SpecError
from tunewise.models import resolve_device_policy
from tunewise.models.artifact import load_artifact
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job

RULE = f"{FIXTURES / 'rules.py'}:short_answer"


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _loads(run_dir) -> None:
    model, tokenizer, _ = load_artifact(run_dir, resolve_device_policy("cpu", "fp32"))
    with torch.no_grad():
        assert torch.isfinite(model(**tokenizer("hi", return_tensors="pt")).logits).all()


def test_ppo_runs_end_to_end_against_a_reward_model_and_warns_on_kl(tiny_model_dir, reward_run):
    spec = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "ppo", steps=2, reward_model=str(reward_run),
                      max_new_tokens=6, ppo_epochs=2, eval_prompts=2, kl_warn=1e-9, lora={"r": 4},
                      train={"warmup_ratio": 0.0})  # step 1 must update, so step 2 samples from a moved policy
    result = run_training_job(load_spec(raw=spec))
    rows = _rows(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward_mean", "kl_ref", "policy_loss", "value_loss", "clip_frac", "answer_tokens_mean"):
        assert key in rows[-1], key
    assert rows[-1]["kl_ref"] > 0 and rows[-1].get("kl_warning") is True  # a bound of 1e-9 nats is always passed
    assert "val_reward_mean" in rows[-1]  # held-out prompts scored at the checkpoint
    _loads(result.run_dir)


def test_ppo_with_full_weights_resumes_after_a_crash(tiny_model_dir, reward_run, monkeypatch):
    from tunewise.align import ppo

    spec = load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "ppo", steps=2, name="t-ppo-resume",
                                    reward_model=str(reward_run), adapter="none", max_new_tokens=4, ppo_epochs=1,
                                    eval_prompts=0, train={"learning_rate": 1e-5},
                                    ) | {"checkpoint": {"every_steps": 1}})
    original = ppo._save

    def crash_after_first_save(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt("simulated kill after the step-1 checkpoint")

    monkeypatch.setattr(ppo, "_save", crash_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        run_training_job(spec)
    monkeypatch.setattr(ppo, "_save", original)
    result = run_training_job(spec)
    assert result.resumed_from == 1 and result.steps == 2
    assert [r["step"] for r in _rows(result.run_dir)] == [1, 2]
    _loads(result.run_dir)


def test_ppo_without_a_reward_model_names_the_option(tiny_model_dir):
    with pytest.raises(SpecError, match="method.reward_model"):
        run_training_job(load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "ppo")))


def test_grpo_runs_with_a_reward_model_and_a_rule(tiny_model_dir, reward_run):
    spec = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "grpo", steps=2, reward_model=str(reward_run),
                      reward_functions=[RULE], num_generations=2, max_completion_length=6, lora={"r": 4})
    result = run_training_job(load_spec(raw=spec))
    rows = _rows(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    last = rows[-1]
    assert {"reward_mean", "kl_ref", "rewards_reward_model_mean", "rewards_short_answer_mean"} <= set(last)
    assert last["rewards_short_answer_mean"] < 0  # the rule scores minus the word count
    _loads(result.run_dir)


def test_grpo_trains_on_a_prompt_only_file_with_a_rule_beside_its_spec(tiny_model_dir, tmp_path):
    # The spec names its data and its rule relative to its own folder, not the working directory.
    (tmp_path / "prompts.jsonl").write_text((FIXTURES / "prompts.jsonl").read_text())
    (tmp_path / "rules.py").write_text((FIXTURES / "rules.py").read_text())
    spec = align_spec(tiny_model_dir, tmp_path / "prompts.jsonl", "grpo", steps=2, reward_functions=["rules.py:short_answer"],
                      num_generations=2, max_completion_length=6, lora={"r": 4})
    spec["data"]["train"] = "prompts.jsonl"
    spec_file = tmp_path / "grpo.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    result = run_training_job(load_spec(spec_file), spec_path=spec_file)
    rows = _rows(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2] and "rewards_short_answer_mean" in rows[-1]
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert report["format"] == "prompt" and report["rows_kept"] == 10
    held_out = (result.run_dir / "data" / "prompts.jsonl").read_text().splitlines()
    assert held_out and all(set(json.loads(line)) == {"prompt"} for line in held_out)
    _loads(result.run_dir)


def test_grpo_group_must_fit_in_a_step(tiny_model_dir):
    spec = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "grpo", reward_functions=[RULE], num_generations=3)
    with pytest.raises(SpecError, match="multiple of method.num_generations=3"):
        run_training_job(load_spec(raw=spec))
