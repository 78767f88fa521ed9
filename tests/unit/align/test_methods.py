"""Every alignment method trains a few steps on the tiny model and writes a loadable artifact.

The fast set runs each method once, rotating the adapter choice so lora, qlora and full weights
all run; the rest of the method x adapter matrix is marked slow.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.models import resolve_device_policy
from tunewise.models.artifact import load_artifact
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job

FAST = {("dpo", "lora"), ("orpo", "none"), ("kto", "qlora"), ("reward", "lora")}
MATRIX = [(m, a) for m in ("dpo", "orpo", "kto", "reward") for a in ("lora", "qlora", "none")]
CPU = resolve_device_policy("cpu", "fp32")


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "method,adapter",
    [pytest.param(m, a, marks=() if (m, a) in FAST else pytest.mark.slow) for m, a in MATRIX],
)
def test_preference_method_trains_and_writes_loadable_artifact(method, adapter, tiny_model_dir):
    data = FIXTURES / ("unpaired.jsonl" if method == "kto" else "pairs.jsonl")
    result = run_training_job(load_spec(raw=align_spec(tiny_model_dir, data, method, adapter=adapter,
                                                       lora={"r": 4})))
    run = result.run_dir
    assert result.state == "completed" and result.steps == 2
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert all("train_loss" in r for r in rows) and "val_loss" in rows[-1]
    if method != "reward":
        assert {"reward_chosen", "reward_rejected", "reward_margin"} <= set(rows[-1])
    if method != "reward" and (method, adapter) != ("orpo", "none"):  # ORPO keeps no reference copy
        assert rows[-1]["kl_ref"] >= 0  # KL probe against the base (adapter off) or the frozen copy
    if method in ("dpo", "orpo", "reward"):
        assert "preference_accuracy" in rows[-1]
    assert (run / "data_report.json").is_file() and (run / "data" / "validation.jsonl").is_file()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002"]
    info = json.loads((run / "artifact" / "tunewise.json").read_text())
    assert info["method"] == method and info["adapter"] == (adapter != "none")

    ids = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
    if method == "reward":
        from tunewise.align.reward_model import RewardScorer

        scorer = RewardScorer.load(run, CPU)
        scores = scorer.score([[{"role": "user", "content": "Describe rain."}]] * 2, ["Rain is calm.", "Well..."])
        assert len(scores) == 2 and all(torch.isfinite(torch.tensor(scores)))
        return
    model, _, loaded = load_artifact(run, CPU)
    assert loaded.adapter == (adapter != "none")
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()


def test_kto_accepts_paired_data_as_desirable_and_undesirable(tiny_model_dir):
    result = run_training_job(load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "kto", steps=1)))
    assert result.state == "completed"


def test_alignment_methods_are_registered_with_their_kind():
    from tunewise.methods import get_method

    kinds = {name: get_method(name).kind for name in ("dpo", "orpo", "kto", "reward", "ppo", "grpo")}
    assert kinds == {"dpo": "preference", "orpo": "preference", "kto": "preference", "reward": "preference",
                     "ppo": "rl", "grpo": "rl"}
    for name in kinds:
        method = get_method(name)
        assert method.trainer is not None and method.config_class().adapter == "lora"


def test_method_options_are_validated_in_the_spec(tiny_model_dir):
    from tunewise.errors import SpecError

    with pytest.raises(SpecError, match="method.adapter"):
        load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", adapter="dora"))
    with pytest.raises(SpecError, match="method.lora.r"):
        load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", lora={"r": 0}))
    with pytest.raises(SpecError, match="reward_weights"):
        load_spec(raw=align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "grpo", reward_functions=["a:b"],
                                 reward_weights=[1.0, 2.0]))
