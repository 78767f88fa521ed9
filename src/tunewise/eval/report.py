"""The evaluation report and gate verdict: typed records written as `<run>/eval.json` and `<run>/gate.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

EVAL_FILE = "eval.json"
GATE_FILE = "gate.json"


class Sample(BaseModel):
    prompt: str
    reference: str
    tuned: str
    base: str | None = None


class JudgeResult(BaseModel):
    judge: str  # model name, or "<model> @ <base_url>"
    n: int
    wins: int
    losses: int
    ties: int
    invalid: int = 0  # replies that named neither answer; left out of n
    win_rate: float  # ties count half
    ci_low: float  # 95% Wilson score interval on win_rate
    ci_high: float
    first_position_share: float  # share of decided verdicts that picked the answer shown first (position bias)


class ForgettingResult(BaseModel):
    text_ppl_base: float | None = None
    text_ppl_tuned: float | None = None
    ppl_increase: float | None = None  # relative: 0.10 means +10%
    qa_accuracy_base: float | None = None
    qa_accuracy_tuned: float | None = None
    qa_accuracy_drop: float | None = None  # absolute, in accuracy points (0.05 = 5 points)
    paragraphs: int = 0
    questions: int = 0
    lm_eval: dict[str, dict[str, float]] = Field(default_factory=dict)  # task -> {"base", "tuned"}
    flagged: bool = False
    notes: list[str] = Field(default_factory=list)


class ModuleSpectrum(BaseModel):
    module: str
    r: int
    scaling: float
    singular_values: list[float]  # of scaling * B @ A, largest first, at most r of them
    rank_90: int  # singular values needed for 90% of the energy (sum of squares)
    effective_rank: float  # exp(entropy of the normalised singular values), Roy & Vetterli 2007


class SpectrumReport(BaseModel):
    method: str
    r: int
    modules: list[ModuleSpectrum]
    median_rank_90: float
    median_effective_rank: float
    suggested_r: int | None
    warnings: list[str] = Field(default_factory=list)


class EvalReport(BaseModel):
    """Metrics of the fine-tuned model, the same for its base, and the diagnostics around them."""

    run: str
    created_at: str
    base_model: str
    method: str
    n_examples: int = 0
    metrics: dict[str, float | None] = Field(default_factory=dict)  # fine-tuned model
    base_metrics: dict[str, float | None] = Field(default_factory=dict)
    judge: JudgeResult | None = None
    forgetting: ForgettingResult | None = None
    spectrum: SpectrumReport | None = None
    samples: list[Sample] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings_s: dict[str, float] = Field(default_factory=dict)

    @property
    def gain(self) -> dict[str, float | None]:
        """Fine-tuned minus base for every metric measured on both (a loss gain is negative when it improves)."""
        out: dict[str, float | None] = {}
        for key, value in self.metrics.items():
            base = self.base_metrics.get(key)
            out[key] = None if value is None or base is None else value - base
        return out

    def flat_metrics(self) -> dict[str, float | None]:
        """Every number the gate can bound, by dotted name: `exact_match`, `base.exact_match`,
        `gain.exact_match`, `judge.win_rate`, `forgetting.ppl_increase`, `spectrum.suggested_r`..."""
        flat: dict[str, float | None] = dict(self.metrics)
        flat.update({f"base.{k}": v for k, v in self.base_metrics.items()})
        flat.update({f"gain.{k}": v for k, v in self.gain.items()})
        if self.judge:
            for key in ("win_rate", "ci_low", "ci_high", "n"):
                flat[f"judge.{key}"] = float(getattr(self.judge, key))
        if self.forgetting:
            for key, value in self.forgetting.model_dump().items():
                is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if is_number or value is None:
                    flat[f"forgetting.{key}"] = value
            for task, scores in self.forgetting.lm_eval.items():
                if "base" in scores and "tuned" in scores:
                    flat[f"forgetting.lm_eval.{task}.drop"] = scores["base"] - scores["tuned"]
        if self.spectrum:
            flat["spectrum.median_rank_90"] = self.spectrum.median_rank_90
            flat["spectrum.median_effective_rank"] = self.spectrum.median_effective_rank
            flat["spectrum.suggested_r"] = self.spectrum.suggested_r
        return flat

    def to_json(self) -> dict[str, Any]:
        payload = self.model_dump(mode="json")
        payload["gain"] = self.gain
        return payload


class Criterion(BaseModel):
    key: str  # dotted metric name, e.g. forgetting.ppl_increase
    threshold: str  # as written in the spec, e.g. "<= 10%"
    op: str
    target: float
    value: float | None
    passed: bool
    reason: str = ""


class GateVerdict(BaseModel):
    passed: bool
    criteria: list[Criterion] = Field(default_factory=list)
    evaluated_at: str

    @property
    def has_criteria(self) -> bool:
        return bool(self.criteria)

    def summary(self) -> str:
        if not self.criteria:
            return "no gate criteria"
        failed = [c for c in self.criteria if not c.passed]
        if not failed:
            return f"passed ({len(self.criteria)} criteria)"
        return "failed: " + "; ".join(f"{c.key}={_fmt(c.value)} (needs {c.threshold})" for c in failed)


def _fmt(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4g}"


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_report(run_dir: str | Path) -> EvalReport | None:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload.pop("gain", None)
    return EvalReport.model_validate(payload)


def read_verdict(run_dir: str | Path) -> GateVerdict | None:
    path = Path(run_dir) / GATE_FILE
    if not path.is_file():
        return None
    return GateVerdict.model_validate_json(path.read_text(encoding="utf-8"))
