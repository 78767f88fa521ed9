"""Judges for AI feedback and win-rate: which of two answers to a prompt is better.

Two kinds. Score judges rate each answer alone (a scoring function `module:function`, or a trained
reward model): order cannot bias them. Pairwise judges read both answers in one prompt (a model
tunewise loads, or an OpenAI-compatible endpoint); they, `compare` (which shows each pair in a
random, seeded order) and the Wilson interval live in tunewise.eval.judge, shared with the
evaluation stage, and are importable from here too. `make_judge` builds the one judge that the
command-line options name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.errors import SpecError
from tunewise.eval.judge import (
    DEFAULT_TEMPLATE,
    PLACEHOLDERS,
    EndpointJudge,
    Judge,
    JudgeError,
    Messages,
    ModelJudge,
    Verdict,
    compare,
    parse_verdict,
    render_template,
)

__all__ = ["DEFAULT_TEMPLATE", "PLACEHOLDERS", "EndpointJudge", "JudgeError", "ModelJudge", "PairJudge",
           "ScoreJudge", "Verdict", "compare", "load_template", "make_judge", "parse_letter", "render_template"]

PairJudge = Judge
parse_letter = parse_verdict


def load_template(path: str | Path) -> str:
    """A judge prompt template file; it must contain {prompt}, {answer_a} and {answer_b}."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"--judge-template: {file} not found")
    text = file.read_text(encoding="utf-8")
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise SpecError(f"--judge-template: {file} lacks {', '.join(missing)}",
                        hint="the template must show the request and both answers: {prompt} {answer_a} {answer_b}")
    return text


class ScoreJudge:
    """Rates answers one at a time: score(prompts, answers) -> list[float]; the higher one wins."""

    order_sensitive = False

    def __init__(self, score_many: Any, name: str):
        self.score_many = score_many
        self.name = name

    @classmethod
    def from_function(cls, spec: str) -> ScoreJudge:
        from tunewise.align.scoring import call_score, load_score_function

        fn = load_score_function(spec)
        return cls(lambda prompts, answers: [call_score(fn, p, a, spec) for p, a in zip(prompts, answers)],
                   f"function {spec}")

    @classmethod
    def from_reward_model(cls, run: str) -> ScoreJudge:
        from tunewise.align.reward_model import RewardScorer

        scorer = RewardScorer.load(run)
        return cls(scorer.score, scorer.name)

    def verdict(self, prompt: Messages, answer_a: str, answer_b: str) -> Verdict:
        a, b = self.score_many([prompt, prompt], [answer_a, answer_b])
        return "tie" if a == b else ("A" if a > b else "B")


def make_judge(*, model: str | None = None, url: str | None = None, endpoint_model: str | None = None,
               key: str | None = None, function: str | None = None, reward_model: str | None = None,
               template: str | None = None) -> Any:
    """The one judge the options name (exactly one of model, url, function, reward_model)."""
    given = [name for name, value in (("--judge", model), ("--judge-url", url), ("--judge-fn", function),
                                      ("--judge-reward-model", reward_model)) if value]
    if len(given) != 1:
        raise SpecError(f"name exactly one judge, got {', '.join(given) if given else 'none'}",
                        hint="--judge MODEL_OR_RUN | --judge-url URL --judge-model NAME | --judge-fn module:function "
                        "| --judge-reward-model RUN")
    text = load_template(template) if template else DEFAULT_TEMPLATE
    if function:
        return ScoreJudge.from_function(function)
    if reward_model:
        return ScoreJudge.from_reward_model(reward_model)
    if url:
        if not endpoint_model:
            raise SpecError("--judge-url needs --judge-model NAME (the model the endpoint serves)")
        return EndpointJudge(url, endpoint_model, key=key, template=text,
                             settings_hint="check --judge-url, --judge-model and --judge-key")
    return ModelJudge.load(model, text)
