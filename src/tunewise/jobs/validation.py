"""Validating a job's data with its base model's tokenizer before it may queue.

OpenAI's error codes for what is wrong (`invalid_training_file`, `invalid_validation_file`,
`invalid_n_examples`), with the data pipeline's file:line detail in the message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.jobs.files import problem_text

MIN_EXAMPLES = 10  # OpenAI refuses training files with fewer examples
_tokenizers: dict[str, Any] = {}
_tokenizer_lock = threading.Lock()


@dataclass
class DataCheck:
    ok: bool
    code: str | None = None
    message: str | None = None
    param: str | None = None
    examples: int = 0
    tokens: int = 0
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> report dict


def tokenizer_for(base_model: str) -> Any:
    """The tokenizer of a base model (cached: loading one takes a second)."""
    with _tokenizer_lock:
        if base_model not in _tokenizers:
            from tunewise.models import resolve_base_model
            from tunewise.models.load import load_tokenizer

            _tokenizers[base_model] = load_tokenizer(resolve_base_model(base_model))
        return _tokenizers[base_model]


def _stage_specs(spec: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    if not spec.get("stages"):
        return [spec]
    from tunewise.align.pipeline import stage_dicts

    return stage_dicts(spec, job_name=job_id)


def check_job_data(spec: dict[str, Any], job_id: str, labels: dict[str, tuple[str, str]], *,
                   min_examples: int = MIN_EXAMPLES) -> DataCheck:
    """Validate every data file the job trains on. `labels` maps a stored path to the client's
    (file id, file name); messages name the file as the client does, never the server's path."""
    from tunewise.data import validate_file

    result = DataCheck(ok=True)
    for stage in _stage_specs(spec, job_id):
        data = stage.get("data") or {}
        tokenizer = tokenizer_for(stage["base_model"])
        for key, param, code in (("train", "training_file", "invalid_training_file"),
                                 ("validation", "validation_file", "invalid_validation_file")):
            path = data.get(key)
            if not path:
                continue
            file_id, label = labels.get(str(path), (None, Path(path).name))
            report = validate_file(path, format=data.get("format"), tokenizer=tokenizer,
                                   max_length=data.get("max_length", 1024),
                                   on_too_long=data.get("on_too_long", "drop"), dedup=data.get("dedup", True),
                                   near_dup_threshold=data.get("near_dup_threshold", 0.9),
                                   on_invalid=data.get("on_invalid", "fail"))
            as_dict = _relabel(report.to_dict(), str(path), label)
            result.reports[label] = as_dict
            if not report.ok:
                problems = [problem_text(e) for e in as_dict["errors"][:5]]
                more = f" (and {len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
                kind = "training" if key == "train" else "validation"
                which = f" {file_id}" if file_id else ""
                return DataCheck(False, code, f"The job failed due to an invalid {kind} file{which}. "
                                 + "; ".join(problems) + more, param, reports=result.reports)
            if key == "train":
                result.examples += report.rows_kept
                result.tokens += (report.token_stats() or {}).get("total", 0)
                if report.rows_kept < min_examples:
                    return DataCheck(False, "invalid_n_examples",
                                     f"Training file {label} has {report.rows_kept} example(s), but must have at "
                                     f"least {min_examples} examples", "training_file", reports=result.reports)
    return result


def _relabel(report: dict[str, Any], path: str, label: str) -> dict[str, Any]:
    import json

    text = json.dumps(report).replace(json.dumps(path)[1:-1], label.replace('"', "'"))
    return json.loads(text)
