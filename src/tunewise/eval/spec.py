"""The `eval:` section of a job spec: what to measure after training and what must hold to pass.

Example:
    eval:
      max_examples: 50
      metrics: [exact_match, token_f1, rouge_l]
      judge: {model: smollm2-135m-instruct}
      gate:
        exact_match: ">= 0.8"
        forgetting.ppl_increase: "<= 10%"
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunewise.errors import SpecError

MetricName = Literal["exact_match", "token_f1", "rouge_l", "bleu", "chrf", "accuracy", "json_valid"]
METRIC_NAMES: tuple[str, ...] = MetricName.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class JudgeSpec(_Strict):
    """An LLM judge comparing the fine-tuned model's answers with the base model's."""

    model: str = Field(
        description="Without base_url: a model tunewise can load (bundled name or local directory). "
        "With base_url: the model name the endpoint serves."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (POST {base_url}/chat/completions)."
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the endpoint's key.")
    max_examples: int | None = Field(None, ge=1, description="Judged pairs; default: eval.max_examples.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for the endpoint, in seconds.")
    instructions: str | None = Field(
        None, description="Replaces the default criteria (helpful, correct, follows the instruction)."
    )


class ForgettingSpec(_Strict):
    """General ability before and after: perplexity on general text, accuracy on easy general questions."""

    enabled: bool = Field(True, description="Run the forgetting check.")
    text: str | None = Field(
        None, description="General text file, paragraphs separated by blank lines (default: shipped sample)."
    )
    questions: str | None = Field(
        None, description='JSONL of {"question", "answer", "aliases"?} (default: shipped general questions).'
    )
    max_paragraphs: int = Field(30, ge=1, description="Paragraphs of general text scored.")
    max_questions: int = Field(30, ge=1, description="General questions asked.")
    warn_ppl_increase: float = Field(
        0.10, ge=0, description="Flag forgetting when general-text perplexity rises by more than this share."
    )
    lm_eval_tasks: list[str] = Field(
        default_factory=list, description="lm-evaluation-harness tasks (only if lm_eval is installed)."
    )
    lm_eval_limit: int = Field(50, ge=1, description="Examples per lm-eval task.")


class EvalSpec(_Strict):
    """Everything `tunewise eval` and the end of `tunewise train` measure, and the gate."""

    enabled: bool = Field(True, description="Evaluate at the end of training.")
    max_examples: int = Field(50, ge=1, description="Held-out records used for loss and generation metrics.")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Longest generated answer, in tokens.")
    batch_size: int = Field(8, ge=1, description="Sequences per forward pass during evaluation.")
    metrics: list[MetricName] = Field(
        default_factory=lambda: ["exact_match", "token_f1", "rouge_l"],
        description="Generation metrics: " + ", ".join(METRIC_NAMES) + ".",
    )
    labels: list[str] | None = Field(
        None, description="Label set for `accuracy`: the first label named in an answer is its prediction."
    )
    json_schema: str | dict[str, Any] | None = Field(
        None, description="JSON schema (file path or inline mapping) that answers must satisfy for `json_valid`."
    )
    compare_base: bool = Field(True, description="Measure the base model too, so every metric shows its gain.")
    judge: JudgeSpec | None = Field(None, description="Judge win-rate against the base model.")
    forgetting: ForgettingSpec = Field(default_factory=ForgettingSpec)
    spectrum: bool = Field(True, description="Singular-value diagnostics of LoRA-family adapters.")
    samples: int = Field(5, ge=0, description="Before/after examples kept in the report.")
    seed: int = Field(0, description="Seed for example order and judge position randomisation.")
    gate: dict[str, str] = Field(
        default_factory=dict,
        description='Criteria that must hold, e.g. {exact_match: ">= 0.8", forgetting.ppl_increase: "<= 10%"}.',
    )

    @field_validator("gate")
    @classmethod
    def _check_gate(cls, value: dict[str, str]) -> dict[str, str]:
        from tunewise.eval.gate import parse_threshold

        for key, text in value.items():
            try:
                parse_threshold(text)
            except ValueError as err:
                raise ValueError(f"gate.{key}: {err}") from None
        return value

    @field_validator("metrics")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def eval_spec_of(spec: Any) -> EvalSpec:
    """The EvalSpec inside a JobSpec (field `eval`), a dict holding an `eval` section, or an EvalSpec itself.

    Raises SpecError naming the field (`eval.gate.exact_match: ...`) when the section is invalid.
    """
    try:
        return _eval_spec_of(spec)
    except ValidationError as err:
        problems = "; ".join(f"eval.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise SpecError(f"invalid eval section: {problems}") from None


def _eval_spec_of(spec: Any) -> EvalSpec:
    if spec is None:
        return EvalSpec()
    if isinstance(spec, EvalSpec):
        return spec
    if isinstance(spec, dict):
        section = spec.get("eval", spec if not {"data", "method", "base_model"} & spec.keys() else None)
        return EvalSpec.model_validate(section or {})
    section = getattr(spec, "eval", None)
    if section is None:
        return EvalSpec()
    if isinstance(section, EvalSpec):
        return section
    return EvalSpec.model_validate(section.model_dump() if isinstance(section, BaseModel) else section)
