"""Reading finished run directories: locate one, its spec, status, metrics, and a one-line summary.

Used by `tunewise runs / compare / report / eval` and the registry; the run directory layout is
the contract (see docs/evaluation.md): spec.yaml, status.json, metrics.jsonl, data_report.json,
data/validation.jsonl, artifact/, and after evaluation eval.json and gate.json.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from tunewise.eval.errors import EvalError
from tunewise.eval.report import read_report, read_verdict, write_json

STATUS_FILE = "status.json"


def resolve_run_dir(run: str | Path) -> Path:
    """A run directory given as a path or as a name under the workspace's runs/."""
    from tunewise.workspace import runs_dir

    path = Path(run).expanduser()
    if path.is_dir() and ((path / STATUS_FILE).is_file() or (path / "artifact").is_dir()):
        return path.resolve()
    named = runs_dir() / str(run)
    if named.is_dir():
        return named
    known = ", ".join(sorted(p.name for p in runs_dir().iterdir() if p.is_dir())[:10]) or "none yet"
    raise EvalError(f"run {run!r} not found (neither a run directory nor a name under {runs_dir()})",
                    hint=f"`tunewise runs` lists them; known: {known}")


def read_spec_dict(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "spec.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def spec_value(spec: Any, dotted: str, default: Any = None) -> Any:
    """`data.max_length` from a JobSpec, a pydantic section or a plain dict; default when absent."""
    node = spec
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return default if node is None else node


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {"state": "unknown"}


def update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (a None value removes the key), atomically."""
    status = read_status(run_dir)
    for key, value in fields.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    write_json(run_dir / STATUS_FILE, status)
    return status


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written while we read
    return rows


def last_value(rows: list[dict[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        if row.get(key) is not None:
            return row[key]
    return None


def summarize_run(run_dir: Path) -> dict[str, Any]:
    """One run as a flat record: status, method, losses, key eval metrics and the gate verdict."""
    status = read_status(run_dir)
    rows = read_metrics(run_dir)
    report, verdict = read_report(run_dir), read_verdict(run_dir)
    summary: dict[str, Any] = {
        "name": run_dir.name,
        "state": status.get("state", "unknown"),
        "reason": status.get("reason"),
        "method": status.get("method") or spec_value(read_spec_dict(run_dir), "method.name"),
        "base_model": status.get("base_model"),
        "step": status.get("step"),
        "total_steps": status.get("total_steps"),
        "started_at": iso_time(status.get("started_at")),
        "finished_at": iso_time(status.get("finished_at")),
        "train_loss": last_value(rows, "train_loss"),
        "val_loss": last_value(rows, "val_loss"),
        "gate": None if verdict is None else ("passed" if verdict.passed else "failed"),
        "metrics": {},
        "base_metrics": {},
    }
    if report is not None:
        summary["metrics"] = {k: v for k, v in report.metrics.items() if v is not None}
        summary["base_metrics"] = {k: v for k, v in report.base_metrics.items() if v is not None}
        if report.forgetting and report.forgetting.ppl_increase is not None:
            summary["metrics"]["forgetting.ppl_increase"] = report.forgetting.ppl_increase
        if report.judge:
            summary["metrics"]["judge.win_rate"] = report.judge.win_rate
    return summary


def iso_time(value: Any) -> str | None:
    """status.json times as ISO 8601 UTC, whether stored as epoch seconds or already as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds")
    return None if value is None else str(value)


def list_runs() -> list[Path]:
    """Run directories under the workspace, oldest first."""
    from tunewise.workspace import runs_dir

    return sorted((p for p in runs_dir().iterdir() if p.is_dir() and (p / STATUS_FILE).is_file()),
                  key=lambda p: (iso_time(read_status(p).get("started_at")) or "", p.name))
