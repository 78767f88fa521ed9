"""Forgetting check: general ability of the fine-tuned model against its base.

Two probes ship with tunewise (eval/data/): ~30 paragraphs of general text, scored by perplexity,
and ~30 easy general questions, scored by whether the short answer appears in the reply. Either can
be replaced by the user's own file. lm-evaluation-harness tasks run too when `lm_eval` is installed.
"""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any

from tunewise.eval.errors import EvalError
from tunewise.eval.heldout import encode_record, loss_and_perplexity
from tunewise.eval.metrics import normalize_answer
from tunewise.eval.report import ForgettingResult
from tunewise.eval.spec import ForgettingSpec

GENERAL_TEXT = "general_text.txt"
GENERAL_QUESTIONS = "general_questions.jsonl"
PARAGRAPH_MAX_TOKENS = 512
ANSWER_MAX_NEW_TOKENS = 24  # short answers; longer replies only add generation time


def _read_text(path: str | None, shipped: str) -> tuple[str, str]:
    if path is None:
        return resources.files("tunewise.eval.data").joinpath(shipped).read_text(encoding="utf-8"), shipped
    file = Path(path)
    if not file.is_file():
        raise EvalError(f"eval.forgetting: {file} not found")
    return file.read_text(encoding="utf-8"), str(file)


def general_paragraphs(path: str | None = None, limit: int = 30) -> list[str]:
    text, _ = _read_text(path, GENERAL_TEXT)
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return paragraphs[:limit]


def general_questions(path: str | None = None, limit: int = 30) -> list[dict[str, Any]]:
    text, source = _read_text(path, GENERAL_QUESTIONS)
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append({"question": str(row["question"]), "answers": [str(row["answer"])] + list(row.get("aliases", []))})
        except (json.JSONDecodeError, KeyError, TypeError):
            raise EvalError(f"{source}:{line_no}: expected {{\"question\", \"answer\", \"aliases\"?}}") from None
    return out[:limit]


def text_perplexity(model: Any, tokenizer: Any, paragraphs: list[str], *, batch_size: int = 8) -> float | None:
    encoded = [encode_record(tokenizer, {"text": p}, PARAGRAPH_MAX_TOKENS) for p in paragraphs]
    return loss_and_perplexity(model, tokenizer, encoded, batch_size=batch_size)[1]


def answer_is_correct(reply: str, answers: list[str]) -> bool:
    text = f" {normalize_answer(reply)} "
    return any(f" {normalize_answer(a)} " in text for a in answers if normalize_answer(a))


def qa_accuracy(model: Any, tokenizer: Any, questions: list[dict[str, Any]], *, batch_size: int = 8) -> float | None:
    from tunewise.models.generate import generate_replies

    if not questions:
        return None
    conversations = [[{"role": "user", "content": f"Answer in a few words. {q['question']}"}] for q in questions]
    replies = generate_replies(model, tokenizer, conversations, max_new_tokens=ANSWER_MAX_NEW_TOKENS,
                               batch_size=batch_size)
    return sum(answer_is_correct(r, q["answers"]) for r, q in zip(replies, questions)) / len(questions)


def general_ability(model: Any, tokenizer: Any, spec: ForgettingSpec, *, batch_size: int = 8) -> dict[str, float | None]:
    """{"text_ppl", "qa_accuracy"} of one model on the general probes."""
    paragraphs = general_paragraphs(spec.text, spec.max_paragraphs)
    questions = general_questions(spec.questions, spec.max_questions)
    return {
        "text_ppl": text_perplexity(model, tokenizer, paragraphs, batch_size=batch_size),
        "qa_accuracy": qa_accuracy(model, tokenizer, questions, batch_size=batch_size),
    }


def compare_ability(base: dict[str, float | None], tuned: dict[str, float | None], spec: ForgettingSpec) -> ForgettingResult:
    """The change from base to tuned, flagged when perplexity rises past spec.warn_ppl_increase."""
    result = ForgettingResult(
        text_ppl_base=base["text_ppl"], text_ppl_tuned=tuned["text_ppl"],
        qa_accuracy_base=base["qa_accuracy"], qa_accuracy_tuned=tuned["qa_accuracy"],
        paragraphs=len(general_paragraphs(spec.text, spec.max_paragraphs)),
        questions=len(general_questions(spec.questions, spec.max_questions)),
    )
    if result.text_ppl_base and result.text_ppl_tuned is not None:
        result.ppl_increase = result.text_ppl_tuned / result.text_ppl_base - 1.0
    if result.qa_accuracy_base is not None and result.qa_accuracy_tuned is not None:
        result.qa_accuracy_drop = result.qa_accuracy_base - result.qa_accuracy_tuned
    if result.ppl_increase is not None and result.ppl_increase > spec.warn_ppl_increase:
        result.flagged = True
        result.notes.append(
            f"general-text perplexity rose {result.ppl_increase:+.1%} ({result.text_ppl_base:.4g} -> "
            f"{result.text_ppl_tuned:.4g}), past the {spec.warn_ppl_increase:.0%} warning level: "
            "mix 5-10% general data into training, lower the learning rate or train fewer epochs"
        )
    if result.qa_accuracy_drop is not None and result.qa_accuracy_drop > 0.1:
        result.flagged = True
        result.notes.append(f"general-question accuracy fell by {100 * result.qa_accuracy_drop:.0f} points "
                            f"({result.qa_accuracy_base:.0%} -> {result.qa_accuracy_tuned:.0%})")
    return result


def forgetting_check(pair: Any, spec: ForgettingSpec, *, batch_size: int = 8) -> ForgettingResult:
    """Run the general probes on the fine-tuned model and its base (a `ModelPair`)."""
    tuned = general_ability(pair.tuned, pair.tokenizer, spec, batch_size=batch_size)
    with pair.base() as base_model:
        base = general_ability(base_model, pair.tokenizer, spec, batch_size=batch_size)
    result = compare_ability(base, tuned, spec)
    if spec.lm_eval_tasks:
        _run_lm_eval(pair, spec, result)
    return result


def _run_lm_eval(pair: Any, spec: ForgettingSpec, result: ForgettingResult) -> None:
    if importlib.util.find_spec("lm_eval") is None:
        result.notes.append("lm-eval tasks skipped: lm_eval is not installed (pip install lm-eval)")
        return
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        def accuracy_by_task(model: Any) -> dict[str, float]:
            out = simple_evaluate(model=HFLM(pretrained=model, tokenizer=pair.tokenizer),
                                  tasks=list(spec.lm_eval_tasks), limit=spec.lm_eval_limit)
            scores = {}
            for task, metrics in out["results"].items():
                value = metrics.get("acc,none", metrics.get("acc_norm,none"))
                if isinstance(value, (int, float)):
                    scores[task] = float(value)
            return scores

        tuned = accuracy_by_task(pair.tuned)
        with pair.base() as base_model:
            base = accuracy_by_task(base_model)
    except Exception as err:  # offline datasets, unknown task names: a note, not a failed evaluation
        result.notes.append(f"lm-eval tasks skipped: {type(err).__name__}: {err}")
        return
    for task in sorted(set(tuned) & set(base)):
        result.lm_eval[task] = {"base": base[task], "tuned": tuned[task]}
