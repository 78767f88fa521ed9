"""Generation metrics: predictions against references, one number per metric.

exact_match, token_f1, rouge_l, accuracy and json_valid are shares in [0, 1]; bleu and chrf keep
sacrebleu's usual 0-100 scale so they read like published figures.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunewise.eval.errors import EvalError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
# Distinct references up to this many are treated as a label set when `labels` is not given.
MAX_IMPLICIT_LABELS = 20


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse spaces (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    return _mean(float(normalize_answer(p) == normalize_answer(r)) for p, r in zip(predictions, references))


def _token_f1_one(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    return _mean(_token_f1_one(p, r) for p, r in zip(predictions, references))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _mean(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def predicted_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label named earliest in the answer (longest label first on ties, so 'not spam' beats 'spam')."""
    text = f" {normalize_answer(answer)} "
    best: tuple[int, int, str] | None = None
    for label in labels:
        norm = normalize_answer(label)
        if not norm:
            continue
        pos = text.find(f" {norm} ")
        if pos >= 0 and (best is None or (pos, -len(norm)) < best[:2]):
            best = (pos, -len(norm), label)
    return best[2] if best else None


def accuracy(predictions: Sequence[str], references: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Share of answers whose predicted label equals the reference label."""
    if labels is None:
        distinct = sorted(set(references))
        if len(distinct) > MAX_IMPLICIT_LABELS:
            raise EvalError(
                f"eval.metrics: accuracy needs a label task, but the references hold {len(distinct)} distinct answers",
                hint="list the labels in eval.labels, or use exact_match / token_f1 for free-form answers",
            )
        labels = distinct
    return _mean(
        float(normalize_answer(predicted_label(p, labels) or "\0") == normalize_answer(r))
        for p, r in zip(predictions, references)
    )


def load_json_schema(schema: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None or isinstance(schema, dict):
        return schema
    path = Path(schema)
    if not path.is_file():
        raise EvalError(f"eval.json_schema: {path} not found", hint="give a JSON schema file or an inline mapping")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvalError(f"eval.json_schema: {path}:{err.lineno} is not valid JSON ({err.msg})") from None
    return loaded


def json_valid(predictions: Sequence[str], schema: dict[str, Any] | None = None) -> float:
    """Share of answers that parse as JSON (code fences allowed) and, with a schema, satisfy it."""
    import jsonschema

    validator = None
    if schema is not None:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        validator = validator_class(schema)
    scores = []
    for answer in predictions:
        try:
            value = json.loads(_FENCE.sub("", answer.strip()))
        except json.JSONDecodeError:
            scores.append(0.0)
            continue
        scores.append(float(validator is None or validator.is_valid(value)))
    return _mean(scores)


def compute_metrics(names: Sequence[str], predictions: Sequence[str], references: Sequence[str], *,
                    labels: Sequence[str] | None = None,
                    json_schema: dict[str, Any] | None = None) -> dict[str, float]:
    """Every metric in `names` for one model's predictions."""
    table: dict[str, Callable[[], float]] = {
        "exact_match": lambda: exact_match(predictions, references),
        "token_f1": lambda: token_f1(predictions, references),
        "rouge_l": lambda: rouge_l(predictions, references),
        "bleu": lambda: bleu(predictions, references),
        "chrf": lambda: chrf(predictions, references),
        "accuracy": lambda: accuracy(predictions, references, labels),
        "json_valid": lambda: json_valid(predictions, json_schema),
    }
    return {name: table[name]() for name in names}


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
