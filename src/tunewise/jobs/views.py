"""A job as the native API shows it: queue place and reason, priority, pool, progress, the spec."""

from __future__ import annotations

from typing import Any

from tunewise.jobs.failure_words import explain_error
from tunewise.jobs.store.models import Job


def client_spec(job: Job, paths: dict[str, str]) -> dict[str, Any]:
    """The stored spec with stored file paths (`paths`: path -> file id) replaced by file ids, the base
    model by its offered name."""
    import json

    text = json.dumps(job.spec)
    for path, file_id in paths.items():
        text = text.replace(json.dumps(path)[1:-1], file_id)
    spec = json.loads(text)
    spec["base_model"] = job.model
    return spec


def native_job(job: Job, paths: dict[str, str]) -> dict[str, Any]:
    method = job.spec.get("method") or {}
    return {
        "id": job.id, "team": job.team, "status": job.status, "source": job.source, "model": job.model,
        "fine_tuned_model": job.fine_tuned_model,
        "method": method.get("name", "lora") if isinstance(method, dict) else str(method),
        "priority": job.priority_class, "priority_value": job.priority, "pool": job.pool,
        "preemptible": job.preemptible,
        "queue": {"position": job.queue_position, "reason": job.wait_reason, "detail": job.wait_detail,
                  "estimated_start": job.estimated_start},
        "step": job.step, "total_steps": job.total_steps,
        "estimated_finish": job.estimated_finish if job.status == "running" else None,
        "attempts": job.attempts, "failures": job.failures, "placement": job.placement, "borrowed": job.borrowed,
        "stopping": job.stop_requested, "demand": job.demand,
        "files": list(dict.fromkeys(f for f in [job.training_file, job.validation_file, *(job.files or [])] if f)),
        "spec": client_spec(job, paths), "hyperparameters": job.hyperparameters, "error": explain_error(job.error),
        "trigger_id": job.trigger_id, "rollout": job.rollout, "metadata": job.job_metadata,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }
