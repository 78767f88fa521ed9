"""Generation metrics, thresholds and the gate, and the judge's position-bias handling."""

from __future__ import annotations

import pytest

from tunewise.eval import metrics
from tunewise.eval.errors import EvalError
from tunewise.eval.gate import parse_threshold, run_gate
from tunewise.eval.judge import JudgeItem, judge_win_rate, parse_verdict, wilson_interval
from tunewise.eval.report import EvalReport, ForgettingResult


def test_exact_match_and_token_f1_normalise_case_punctuation_and_articles():
    assert metrics.exact_match(["The Paris."], ["paris"]) == 1.0
    assert metrics.exact_match(["Lyon"], ["Paris"]) == 0.0
    assert metrics.token_f1(["the quick brown fox"], ["quick fox jumps"]) == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_rouge_bleu_chrf_reward_overlap():
    same = ["the cat sat on the mat today"]
    assert metrics.rouge_l(same, same) == pytest.approx(1.0)
    assert metrics.bleu(same, same) == pytest.approx(100.0)
    assert metrics.chrf(same, same) == pytest.approx(100.0)
    assert metrics.chrf(["dogs run fast"], same) < 30


def test_accuracy_uses_the_earliest_label_and_prefers_longer_labels():
    labels = ["spam", "not spam"]
    assert metrics.predicted_label("I think this is not spam at all", labels) == "not spam"
    assert metrics.accuracy(["Label: spam", "not spam."], ["spam", "not spam"], labels) == 1.0
    # without explicit labels the distinct references are the label set
    assert metrics.accuracy(["positive!", "hmm negative"], ["positive", "positive"]) == 0.5


def test_accuracy_refuses_free_form_references():
    refs = [f"answer {i}" for i in range(25)]
    with pytest.raises(EvalError, match="eval.labels"):
        metrics.accuracy(refs, refs)


def test_json_validity_with_schema_and_fences():
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    answers = ['{"name": "a"}', '```json\n{"name": "b"}\n```', '{"title": 1}', "not json"]
    assert metrics.json_valid(answers) == 0.75
    assert metrics.json_valid(answers, schema) == 0.5


@pytest.mark.parametrize("text,expected", [(">= 0.8", (">=", 0.8)), ("<= 10%", ("<=", 0.1)),
                                           ("<1e-3", ("<", 0.001)), ("== 1", ("==", 1.0))])
def test_parse_threshold(text, expected):
    op, value = parse_threshold(text)
    assert (op, pytest.approx(value)) == (expected[0], pytest.approx(expected[1]))


@pytest.mark.parametrize("text", ["0.8", "at least 0.8", ">= eighty", "=> 1"])
def test_parse_threshold_rejects_ambiguous_forms(text):
    with pytest.raises(ValueError, match="op"):
        parse_threshold(text)


def _report(**metrics_values) -> EvalReport:
    return EvalReport(run="r", created_at="now", base_model="b", method="lora", metrics=metrics_values,
                      base_metrics={"exact_match": 0.5},
                      forgetting=ForgettingResult(text_ppl_base=10.0, text_ppl_tuned=12.0, ppl_increase=0.2))


def test_gate_reports_each_criterion_with_its_value():
    report = _report(exact_match=0.9)
    verdict = run_gate(report, {"exact_match": ">= 0.8", "gain.exact_match": "> 0.3",
                                "forgetting.ppl_increase": "<= 10%"})
    by_key = {c.key: c for c in verdict.criteria}
    assert by_key["exact_match"].passed and by_key["exact_match"].value == 0.9
    assert by_key["gain.exact_match"].passed
    assert not by_key["forgetting.ppl_increase"].passed and by_key["forgetting.ppl_increase"].value == pytest.approx(0.2)
    assert not verdict.passed
    assert "forgetting.ppl_increase=0.2" in verdict.summary()


def test_gate_fails_a_metric_nobody_measured():
    verdict = run_gate(_report(exact_match=0.9), {"rouge_l": ">= 0.1"})
    assert not verdict.passed
    assert verdict.criteria[0].value is None and "no metric 'rouge_l'" in verdict.criteria[0].reason


def test_wilson_interval_brackets_the_rate_and_narrows_with_n():
    low, high = wilson_interval(7, 10)
    low2, high2 = wilson_interval(700, 1000)
    assert low < 0.7 < high and low2 < 0.7 < high2
    assert high2 - low2 < (high - low) / 5


class _PrefersLonger:
    """A judge that prefers the longer answer, wherever it is shown."""

    name = "longer"

    def verdict(self, prompt, answer_a, answer_b):
        return "A" if len(answer_a) > len(answer_b) else "B"


class _AlwaysFirst:
    name = "first"

    def verdict(self, prompt, answer_a, answer_b):
        return "A"


def _items(n=40):
    return [JudgeItem([{"role": "user", "content": f"q{i}"}], tuned=f"a long, careful answer {i}", base=f"short {i}")
            for i in range(n)]


def test_judge_order_is_randomised_and_mapped_back():
    result = judge_win_rate(_items(), _PrefersLonger(), seed=1)
    assert (result.wins, result.losses, result.n) == (40, 0, 40)
    assert 0.25 < result.first_position_share < 0.75  # the tuned answer was shown in both positions
    assert result.ci_low > 0.9


def test_position_bias_cannot_inflate_the_win_rate():
    result = judge_win_rate(_items(200), _AlwaysFirst(), seed=3)
    assert result.first_position_share == 1.0
    assert 0.4 < result.win_rate < 0.6 and result.ci_low < 0.5 < result.ci_high


def test_identical_answers_are_ties_without_asking():
    items = [JudgeItem([{"role": "user", "content": "q"}], tuned="Same.", base="same")]
    result = judge_win_rate(items, _AlwaysFirst())
    assert (result.ties, result.win_rate) == (1, 0.5)


@pytest.mark.parametrize("reply,expected", [("A", "A"), (" b.", "B"), ("**A** because", "A"), ("Tie", "tie"),
                                            ("Neither", None), ("", None)])
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) == expected
