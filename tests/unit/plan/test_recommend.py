"""The planner's recommendation on the reference articles' worked example and on cases of our own."""

from __future__ import annotations

import pytest

from tunewise.plan.planner import plan


def test_worked_example_13b_two_a100_five_variants_is_lora():
    # "13B model, 2 A100s, 200K examples, instruction tuning, 5 variants" -> "lora"
    # (Full Fine-Tuning vs PEFT, recommend_fine_tuning_method)
    report = plan(params=13e9, gpu="a100-80gb", gpus=2, examples=200_000, objective="instruction",
                  variants=5, budget_usd=1000)
    rec = report.recommendation
    assert rec.mode == "lora"
    assert any("5 variants" in r and "GB" in r for r in rec.reasons)
    assert any("behaviour change" in r for r in rec.reasons)
    assert report.mode("lora").fits and report.mode("lora").cost_usd < 1000


def test_small_dataset_full_fine_tune_warns_about_overfitting():
    report = plan(params=1.2e9, gpu="h100-80gb", examples=500, objective="domain_knowledge")
    assert report.recommendation.mode == "full"
    assert any("overfits" in w and "500" in w for w in report.recommendation.warnings)


def test_tokenizer_change_means_full():
    report = plan(params=7e9, gpu="h100-80gb", gpus=2, examples=50_000, objective="instruction", tokenizer_change=True)
    assert report.recommendation.mode == "full"
    assert "tokenizer" in report.recommendation.reasons[0]


def test_qlora_when_only_it_fits():
    report = plan(params=13e9, gpu="rtx-4090", examples=20_000, objective="instruction")
    fitting = [m.mode for m in report.modes if m.fits]
    assert fitting == ["qlora"]
    assert report.recommendation.mode == "qlora"
    assert any("lora does not fit" in r for r in report.recommendation.reasons)


def test_alignment_is_dpo():
    report = plan(params=7e9, gpu="h100-80gb", gpus=2, examples=20_000, objective="alignment")
    assert report.recommendation.mode == "dpo"
    assert "DPO" in report.recommendation.reasons[0]


def test_reward_signal_is_ppo():
    report = plan(params=7e9, gpu="h100-80gb", gpus=8, examples=20_000, objective="alignment", reward_signal=True)
    assert report.recommendation.mode == "ppo"
    ppo = report.mode("ppo")
    assert ppo.fits and "gang" in ppo.scheduling


def test_nothing_fits_is_a_clear_refusal():
    report = plan(params=70e9, gpu="t4", gpus=1, examples=20_000)
    assert not any(m.fits for m in report.modes)
    assert report.recommendation.mode is None
    assert "nothing fits" in report.recommendation.reasons[-1]


def test_budget_excludes_what_costs_too_much():
    report = plan(params=7e9, gpu="h100-80gb", gpus=2, tokens=2_000_000_000, objective="domain_knowledge",
                  budget_usd=150)
    assert report.mode("full").fits and not report.mode("full").within_budget
    assert report.recommendation.mode in ("lora", "qlora")
    assert any("over the $150 budget" in r for r in report.recommendation.reasons)


def test_many_variants_turn_full_into_adapters():
    report = plan(params=7e9, gpu="h100-80gb", gpus=4, examples=200_000, objective="domain_knowledge", variants=10)
    assert report.recommendation.mode == "lora"
    assert any("10 variants" in r for r in report.recommendation.reasons)


@pytest.mark.parametrize("gpu,shape", [("a100-80gb", "MIG"), ("rtx-4090", "1 pod")])
def test_small_jobs_can_share_a_gpu_through_mig(gpu, shape):
    report = plan(params=1.2e9, gpu=gpu, examples=10_000, micro_batch=1, seq_len=512)
    assert report.mode("qlora").scheduling_short.startswith(shape)


def test_multi_node_full_fine_tune_is_gang_scheduled():
    report = plan(params=70e9, gpu="a100-80gb", gpus=32, examples=100_000, objective="domain_knowledge")
    full = report.mode("full")
    assert full.fits and full.gpus_needed > 8
    assert full.scheduling.startswith("gang-scheduled multi-node")
