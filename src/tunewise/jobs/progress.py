"""Following a running job: its steps become events, its checkpoints become checkpoint objects.

The training process writes metrics.jsonl and checkpoints in its run directory; the server's loop
reads what is new each tick. Step events read like OpenAI's ("Step 3/10: training loss=1.234"),
each with a `metrics` event carrying the numbers.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.events import add_event
from tunewise.jobs.rundirs import active_run_dir, read_json, read_metrics
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.models import Job, JobCheckpoint
from tunewise.jobs.submit import fine_tuned_model_id

RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


# metrics.jsonl's names -> OpenAI's, for metrics events.
_EVENT_NAMES = {"train_loss": "train_loss", "train_accuracy": "train_mean_token_accuracy",
                "val_loss": "valid_loss", "val_accuracy": "valid_mean_token_accuracy",
                "lr": "lr", "tokens_per_s": "tokens_per_s", "grad_norm": "grad_norm"}


def step_message(row: dict[str, Any], total: int | None) -> str:
    text = f"Step {row['step']}/{total or '?'}: training loss={row.get('train_loss', float('nan')):.4f}"
    if row.get("val_loss") is not None:
        text += f", validation loss={row['val_loss']:.4f}"
    return text


def metrics_data(row: dict[str, Any], total: int | None) -> dict[str, Any]:
    """A metrics event's data, in OpenAI's names."""
    data = {"step": row["step"], "total_steps": total, "train_loss": row.get("train_loss")}
    for ours, theirs in _EVENT_NAMES.items():
        if row.get(ours) is not None:
            data[theirs] = row[ours]
    return data


def checkpoint_metrics(step: int, row: dict[str, Any], saved: dict[str, float]) -> dict[str, float]:
    """A checkpoint's metrics in OpenAI's names. Validation runs over the whole validation split, so
    the `full_valid_*` values are the `valid_*` ones."""
    val_loss = saved.get("val_loss", row.get("val_loss"))
    val_accuracy = saved.get("val_accuracy", row.get("val_accuracy"))
    values = {"step": float(step), "train_loss": row.get("train_loss"),
              "train_mean_token_accuracy": row.get("train_accuracy"),
              "valid_loss": val_loss, "valid_mean_token_accuracy": val_accuracy,
              "full_valid_loss": val_loss, "full_valid_mean_token_accuracy": val_accuracy}
    return {k: v for k, v in values.items() if v is not None}


def sync_progress(session: Session, settings: JobSettings, job: Job) -> None:
    """Turn what the job's run directory gained since the last tick into events and checkpoints."""
    run_dir = active_run_dir(settings, job.id, job.spec)
    status = read_json(run_dir / "status.json")
    if status.get("total_steps"):
        job.total_steps = int(status["total_steps"])
    rows, offset = read_metrics(run_dir, job.metrics_read or 0)
    job.metrics_read = offset
    for row in rows:
        if not isinstance(row.get("step"), int) or row["step"] <= (job.step or 0) or "train_loss" not in row:
            continue
        job.step = row["step"]
        add_event(session, job.id, step_message(row, job.total_steps))
        add_event(session, job.id, f"Step {row['step']} metrics", type="metrics",
                  data=metrics_data(row, job.total_steps))
    _estimate_finish(job)
    _resolve_hyperparameters(job, run_dir)
    sync_checkpoints(session, settings, job, run_dir)


def _resolve_hyperparameters(job: Job, run_dir) -> None:
    """Once training has planned its batch, the job shows the values it trains with instead of "auto"."""
    if job.hyperparameters is not None:
        return
    plan = read_json(run_dir / "batch_plan.json")
    if plan:
        from tunewise.jobs.openai_request import resolved_hyperparameters
        from tunewise.methods import get_method

        method = job.spec.get("method") or {}
        name = method.get("name", "lora") if isinstance(method, dict) else str(method)
        job.hyperparameters = resolved_hyperparameters(job.spec, plan, get_method(name).default_learning_rate)


def _estimate_finish(job: Job) -> None:
    """Now plus the steps left at this attempt's pace so far."""
    handle = job.handle or {}
    started, first_step = handle.get("started_at"), handle.get("start_step", 0)
    done = (job.step or 0) - first_step
    if not (started and done > 0 and job.total_steps):
        return
    per_step = (time.time() - started) / done
    job.estimated_finish = time.time() + per_step * max(0, job.total_steps - job.step)


def sync_checkpoints(session: Session, settings: JobSettings, job: Job, run_dir=None) -> None:
    """One checkpoint object per checkpoint on disk; those the keep policy removed are marked pruned."""
    from tunewise.train.checkpoint import CheckpointManager

    run_dir = run_dir or active_run_dir(settings, job.id, job.spec)
    remote = (job.handle or {}).get("checkpoints")  # a cluster job's checkpoints, on object storage
    root = remote or run_dir / "checkpoints"
    if not remote and not root.is_dir():
        return
    on_disk = {info.step: info for info in CheckpointManager(root).list()}
    known = {c.step: c for c in session.scalars(select(JobCheckpoint).where(JobCheckpoint.job_id == job.id))}
    metrics = _metrics_by_step(run_dir, set(on_disk) - set(known))
    for step, info in sorted(on_disk.items()):
        if step in known:
            known[step].pruned = False
            continue
        session.add(JobCheckpoint(id=ids.new_id(ids.CHECKPOINT), job_id=job.id, step=step,
                                  model_id=f"{fine_tuned_model_id(job)}:ckpt-step-{step}",
                                  metrics=checkpoint_metrics(step, metrics.get(step, {}), info.metrics),
                                  created_at=info.created_at))
        add_event(session, job.id, f"Checkpoint created at step {step}", data={"step": step})
    for step, row in known.items():
        row.pruned = step not in on_disk


def _metrics_by_step(run_dir, steps: set[int]) -> dict[int, dict[str, Any]]:
    if not steps:
        return {}
    rows, _ = read_metrics(run_dir, 0)
    return {r["step"]: r for r in rows if r.get("step") in steps}


def results_csv(run_dir) -> str:
    """OpenAI's results file: one row per step; the validation columns are filled at the steps that validated."""
    rows, _ = read_metrics(run_dir, 0)
    lines = [",".join(RESULT_COLUMNS)]
    for row in rows:
        if "train_loss" not in row:
            continue
        values = [row.get("step"), row.get("train_loss"), row.get("train_accuracy"), row.get("val_loss"),
                  row.get("val_accuracy")]
        lines.append(",".join("" if v is None else str(v) for v in values))
    return "\n".join(lines) + "\n"
