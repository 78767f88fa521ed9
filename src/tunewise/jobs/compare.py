"""Runs side by side: each job's loss curves, a table of final numbers, and where their specs differ."""

from __future__ import annotations

from typing import Any

from tunewise.jobs.rundirs import active_run_dir, final_run_dir, read_json, read_metrics
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.models import Job

MAX_RUNS = 6
CURVE_KEYS = ("train_loss", "val_loss")


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 1}} -> {"train.epochs": 1}; lists stay whole values."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, child in value.items():
        out.update(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return out


def spec_diff(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dotted keys whose values differ between the specs (a missing key counts as null)."""
    flat = [flatten(s) for s in specs]
    keys = sorted(set().union(*flat)) if flat else []
    return [{"key": k, "values": [f.get(k) for f in flat]} for k in keys if len({repr(f.get(k)) for f in flat}) > 1]


def run_summary(settings: JobSettings, job: Job, spec: dict[str, Any]) -> dict[str, Any]:
    """One run's curves (per step) and its final numbers."""
    rows, _ = read_metrics(active_run_dir(settings, job.id, job.spec), 0)
    final = final_run_dir(settings, job.id, job.spec)
    evaluation, gate = read_json(final / "eval.json"), read_json(final / "gate.json")
    curves = {key: [[r["step"], r[key]] for r in rows if r.get(key) is not None and r.get("step") is not None]
              for key in CURVE_KEYS}
    tuned = (evaluation.get("metrics") or {}) if evaluation else {}
    return {
        "id": job.id, "status": job.status, "model": job.model, "method": (spec.get("method") or {}).get("name"),
        "fine_tuned_model": job.fine_tuned_model, "steps": job.step, "total_steps": job.total_steps,
        "curves": curves,
        "final": {"train_loss": _last(rows, "train_loss"), "val_loss": _last(rows, "val_loss"),
                  "tokens_per_s": _last(rows, "tokens_per_s"),
                  "seconds": (job.finished_at - job.started_at) if job.finished_at and job.started_at else None},
        "eval": {k: v for k, v in tuned.items() if isinstance(v, (int, float))},
        "gate": None if not gate else {"passed": gate.get("passed"), "criteria": len(gate.get("criteria") or [])},
    }


def compare_runs(settings: JobSettings, jobs: list[tuple[Job, dict[str, Any]]]) -> dict[str, Any]:
    """`jobs`: (job, the spec as its client sees it). Curves, a metrics table, and the spec diff."""
    runs = [run_summary(settings, job, spec) for job, spec in jobs]
    metric_names = sorted({k for r in runs for k in r["eval"]})
    table = [{"metric": name, "values": [r["final"][name] for r in runs]}
             for name in ("train_loss", "val_loss", "tokens_per_s", "seconds")]
    table += [{"metric": f"eval.{name}", "values": [r["eval"].get(name) for r in runs]} for name in metric_names]
    return {"object": "tunewise.comparison", "runs": runs, "metrics": table,
            "spec_diff": spec_diff([spec for _, spec in jobs])}
