"""Win-rate: Wilson interval, tie and position handling, and the whole evaluation on a tiny adapter."""

from __future__ import annotations

import json
import math

import pytest

from tests.unit.align.conftest import FIXTURES
from tunewise.align.judges import ScoreJudge
from tunewise.align.winrate import evaluate_win_rate, wilson_interval, win_rate

PROMPT = [{"role": "user", "content": "Describe rain."}]


@pytest.mark.parametrize("successes,n,expected", [
    (8, 10, (0.4902, 0.9433)),   # textbook values for 8/10 at 95%
    (0, 10, (0.0, 0.2775)),
    (10, 10, (0.7225, 1.0)),
    (50, 100, (0.4038, 0.5962)),
])
def test_wilson_interval_matches_reference_values(successes, n, expected):
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-4) and high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_formula_and_edges():
    z = 1.959964
    p, n = 0.3, 40
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(12, 40) == pytest.approx((center - half, center + half))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5.5, 11)  # ties counted as half a win
    assert low < 0.5 < high


def test_win_rate_counts_wins_losses_and_ties():
    judge = ScoreJudge(lambda prompts, answers: [-len(a) for a in answers], "shorter wins")
    ours = ["Short.", "A much longer answer than the other one.", "Same."]
    theirs = ["A longer answer.", "Tiny.", "Same."]
    result = win_rate([PROMPT] * 3, ours, theirs, judge)
    assert (result.wins, result.losses, result.ties, result.n) == (1, 1, 1, 3)
    assert result.win_rate == pytest.approx(0.5)
    assert (result.ci_low, result.ci_high) == pytest.approx(wilson_interval(1.5, 3))
    assert result.first_position_share is None  # score judges see answers one at a time


class AlwaysFirst:
    """A pairwise judge with total position bias: it always prefers whatever it is shown first."""

    name = "always A"
    order_sensitive = True

    def verdict(self, prompt, answer_a, answer_b):
        return "A"


def test_random_order_cancels_a_judges_position_bias():
    n = 400
    result = win_rate([PROMPT] * n, [f"ours {i}" for i in range(n)], [f"theirs {i}" for i in range(n)],
                      AlwaysFirst(), seed=3)
    assert result.first_position_share == 1.0
    assert 0.43 < result.win_rate < 0.57  # without shuffling it would be 100%
    assert result.ci_low < 0.5 < result.ci_high


@pytest.fixture
def tiny_adapter_run(tiny_model_dir, tmp_path):
    """A run whose artifact is a randomly initialised LoRA adapter: different from its base, no training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunewise.models.artifact import write_artifact_info
    from tunewise.models.load import load_tokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    artifact = tmp_path / "run" / "artifact"
    model.save_pretrained(str(artifact))
    load_tokenizer(tiny_model_dir).save_pretrained(str(artifact))
    write_artifact_info(artifact, method="dpo", adapter=True, base_model=str(tiny_model_dir),
                        base_model_dir=str(tiny_model_dir))
    return artifact.parent


def test_evaluate_win_rate_against_the_adapter_free_reference(tiny_adapter_run):
    judge = ScoreJudge.from_function(f"{FIXTURES / 'rules.py'}:short_answer")
    prompts = [f"Describe item {i}." for i in range(6)]
    result = evaluate_win_rate(tiny_adapter_run, judge, prompts=prompts, max_new_tokens=8)
    assert result.n == 6 and result.wins + result.losses + result.ties == 6
    assert 0 <= result.ci_low <= result.win_rate <= result.ci_high <= 1
    stored = json.loads((tiny_adapter_run / "winrate.json").read_text())
    assert stored["n"] == 6 and stored["samples"][0]["policy"] != stored["samples"][0]["reference"]


def test_alignment_and_evaluation_share_one_judge_implementation():
    from tunewise.align import judges, winrate
    from tunewise.eval import judge

    for name in ("EndpointJudge", "ModelJudge", "JudgeError", "compare", "render_template", "DEFAULT_TEMPLATE"):
        assert getattr(judges, name) is getattr(judge, name), name
    assert judges.parse_letter is judge.parse_verdict and winrate.wilson_interval is judge.wilson_interval


class Unparseable:
    """A pairwise judge whose every other reply names neither answer."""

    name = "unsure"
    order_sensitive = True
    calls = 0

    def verdict(self, prompt, answer_a, answer_b):
        self.calls += 1
        return "invalid" if self.calls % 2 else "A"


def test_replies_that_name_neither_answer_are_left_out_of_the_win_rate():
    result = win_rate([PROMPT] * 4, ["a", "b", "c", "d"], ["w", "x", "y", "z"], Unparseable())
    assert result.invalid == 2 and result.n == 2 and result.wins + result.losses == 2
    assert "2 replies named neither answer" in result.summary()
