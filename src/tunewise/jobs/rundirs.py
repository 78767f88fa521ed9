"""Where a job's training writes: its run directory (one per stage for `stages:` jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunewise.jobs.settings import JobSettings


def stage_run_dirs(settings: JobSettings, job_id: str, spec: dict[str, Any]) -> list[Path]:
    """The run directory of each stage in order (one for a job without stages)."""
    if not spec.get("stages"):
        return [settings.run_dir(job_id)]
    from tunewise.align.pipeline import stage_dicts

    return [settings.home / "runs" / stage["name"] for stage in stage_dicts(spec, job_name=job_id)]


def active_run_dir(settings: JobSettings, job_id: str, spec: dict[str, Any]) -> Path:
    """The stage training now (or last): the latest stage whose run directory exists."""
    dirs = stage_run_dirs(settings, job_id, spec)
    started = [d for d in dirs if d.exists()]
    return started[-1] if started else dirs[0]


def final_run_dir(settings: JobSettings, job_id: str, spec: dict[str, Any]) -> Path:
    return stage_run_dirs(settings, job_id, spec)[-1]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_metrics(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines of metrics.jsonl from byte `offset`, and the offset after the last complete one."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return [], 0
    size = path.stat().st_size
    if size < offset:  # truncated by a resume: read again from the start
        offset = 0
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows, offset + end
