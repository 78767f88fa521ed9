"""The public Python facade: one function per lifecycle stage. The CLI calls the same code.

    from tunewise import api
    report = api.plan(model="smollm2-135m-instruct", gpu="cpu", examples=2000)
    data = api.validate("train.jsonl")
    run = api.train("job.yaml", overrides=["train.max_steps=20"])
    evaluation = api.evaluate(run.run_dir)
    version = api.register(run.run_dir, name="support-bot")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plan(**options: Any) -> Any:
    """Memory, time and cost of every mode, and a recommendation (see tunewise.plan.plan)."""
    from tunewise.plan import plan as _plan

    return _plan(**options)


def check_fit(*args: Any, **kwargs: Any) -> Any:
    """Will this training job fit the device? (see tunewise.plan.check_fit)"""
    from tunewise.plan import check_fit as _check_fit

    return _check_fit(*args, **kwargs)


def measure_modes(**options: Any) -> Any:
    """Measure real peak memory and tokens/s of each mode on this machine."""
    from tunewise.plan import measure_modes as _measure

    return _measure(**options)


def diagnose(questions: str | Path, docs: str | Path, **options: Any) -> Any:
    """RAG or fine-tune? Closed-book vs retrieved-context accuracy, and the verdict."""
    from tunewise.plan import run_diagnosis

    return run_diagnosis(questions, docs, **options)


def validate(path: str | Path, **options: Any) -> Any:
    """Validate a dataset file: format, problems with file:line, duplicates, token stats."""
    from tunewise.data import validate_file

    return validate_file(path, **options)


def train(spec: str | Path | dict, overrides: list[str] | None = None, *, restart: bool = False) -> Any:
    """Train from a spec file (or dict); resumes a killed run; ends with evaluation and the gate."""
    from tunewise.spec import load_spec
    from tunewise.train.run import run_training_job

    if isinstance(spec, dict):
        return run_training_job(load_spec(raw=spec, overrides=overrides), restart=restart)
    return run_training_job(load_spec(spec, overrides), spec_path=spec, restart=restart)


def evaluate(run: str | Path) -> Any:
    """Evaluate a run, apply its gate, store eval.json and gate.json; returns (report, verdict)."""
    from tunewise.eval import evaluate_and_gate

    return evaluate_and_gate(run)


def register(run: str | Path, name: str) -> Any:
    """Register a run's artifact as a new model version with lineage."""
    from tunewise.registry import register_run

    return register_run(run, name)


def promote(name: str, version: int | str, to: str) -> Any:
    from tunewise.registry import promote as _promote

    return _promote(name, version, to)


def load(name_or_run: str, **options: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for a run, artifact, model directory or base model name."""
    from tunewise.models.merge import load_any

    return load_any(name_or_run, **options)
