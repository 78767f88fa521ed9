"""OpenAI graders that become tunewise scoring rules for `reinforcement` jobs (GRPO).

A `string_check` or `text_similarity` grader that compares the sampled answer with a fixed
reference maps onto a rule `score(prompt, answer) -> float`. Graders that read fields of the data
row (`{{item.*}}`), run code (`python`) or call a model (`score_model`, `label_model`, `multi`)
cannot be mapped and are refused with the reason.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from tunewise.openai_api.errors import bad_request

SAMPLE_OUTPUT = "{{sample.output_text}}"
_TEMPLATE = re.compile(r"\{\{\s*([^}]*)\s*\}\}")
_PARAM = "method.reinforcement.grader"
_SIMILARITY = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_l")


def check_grader(grader: dict[str, Any]) -> dict[str, Any]:
    """The grader if it can be mapped onto a scoring rule; a 400 naming the field otherwise."""
    kind = grader.get("type")
    if kind not in ("string_check", "text_similarity"):
        raise bad_request(f"{_PARAM}.type: {kind!r} graders cannot run here; tunewise maps string_check and "
                          "text_similarity against a fixed reference onto its scoring rules (use the native API "
                          "with method.reward_model for a learned reward)", param=f"{_PARAM}.type",
                          code="unsupported_grader")
    for field in ("input", "reference"):
        if not isinstance(grader.get(field), str):
            raise bad_request(f"{_PARAM}.{field}: a string is required", param=f"{_PARAM}.{field}")
    if grader["input"].strip() != SAMPLE_OUTPUT:
        raise bad_request(f"{_PARAM}.input: only {SAMPLE_OUTPUT} (the sampled answer) can be graded here",
                          param=f"{_PARAM}.input", code="unsupported_grader")
    if _TEMPLATE.search(grader["reference"]):
        raise bad_request(f"{_PARAM}.reference: templates such as {{{{item.answer}}}} read the data row, which "
                          "tunewise scoring rules do not see; give a fixed reference", param=f"{_PARAM}.reference",
                          code="unsupported_grader")
    if kind == "string_check" and grader.get("operation") not in ("eq", "ne", "like", "ilike"):
        raise bad_request(f"{_PARAM}.operation: one of eq, ne, like, ilike", param=f"{_PARAM}.operation")
    if kind == "text_similarity" and grader.get("evaluation_metric") not in _SIMILARITY:
        raise bad_request(f"{_PARAM}.evaluation_metric: supported here: {', '.join(_SIMILARITY)}",
                          param=f"{_PARAM}.evaluation_metric", code="unsupported_grader")
    return grader


def grade(grader: dict[str, Any], prompt: str, answer: str) -> float:
    """The grader's score for one sampled answer (1/0 for string checks, a similarity in [0, 1])."""
    reference = grader["reference"]
    if grader["type"] == "string_check":
        op = grader["operation"]
        if op == "eq":
            return float(answer == reference)
        if op == "ne":
            return float(answer != reference)
        if op == "like":
            return float(reference in answer)
        return float(reference.lower() in answer.lower())
    metric = grader["evaluation_metric"]
    if metric == "fuzzy_match":
        return difflib.SequenceMatcher(None, answer, reference).ratio()
    if metric == "bleu":
        import sacrebleu

        return sacrebleu.sentence_bleu(answer, [reference]).score / 100.0
    from rouge_score import rouge_scorer

    key = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL"}[metric]
    return rouge_scorer.RougeScorer([key]).score(reference, answer)[key].fmeasure


def write_grader_module(folder: Path, grader: dict[str, Any]) -> str:
    """Write the job's scoring rule as `grader.py:score` in `folder`; returns the reward function name."""
    folder.mkdir(parents=True, exist_ok=True)
    literal = repr(json.dumps(grader, sort_keys=True))
    (folder / "grader.py").write_text(
        '"""The OpenAI grader of this job as a tunewise scoring rule (written by the server)."""\n\n'
        "import json\n\nfrom tunewise.jobs.graders import grade\n\n"
        f"GRADER = json.loads({literal})\n\n\n"
        "def score(prompt, answer):\n    return grade(GRADER, prompt, answer)\n")
    return f"{folder / 'grader.py'}:score"
