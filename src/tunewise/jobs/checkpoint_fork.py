"""Resume from a chosen checkpoint: a new job with the same spec whose run starts at that step.

The old job is left as it is (its run, its checkpoints, its model). The new job's run directory is
seeded before it is queued with the checkpoint, the batch plan (so the data is batched the same
way) and the metrics up to that step; `tunewise train` then resumes there as after any interruption,
so the steps that follow are the ones the old job would have trained.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from sqlalchemy.orm import Session

from tunewise.jobs.keys import Principal
from tunewise.jobs.submit import JobFactory, Submission
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.models import Job
from tunewise.openai_api.errors import bad_request, not_found

SEEDED_FILES = ("batch_plan.json",)


def fork_from_checkpoint(session: Session, factory: JobFactory, job: Job, client_spec: dict[str, Any], step: int,
                         who: Principal) -> Job:
    """A new job of `job`'s team that resumes from `job`'s checkpoint at `step`."""
    from tunewise.train.checkpoint import step_dir_name

    settings: JobSettings = factory.settings
    if job.spec.get("stages"):
        raise bad_request("a job with stages resumes from its own newest checkpoint (pause and resume it); "
                          "starting a new one from a chosen step needs a single-stage job", param="step")
    source = settings.run_dir(job.id)
    checkpoint = source / "checkpoints" / step_dir_name(step)
    if not checkpoint.is_dir():
        raise not_found(f"job {job.id} has no checkpoint at step {step} (pruned, or never written)", param="step")
    spec = {k: v for k, v in client_spec.items() if k not in ("name", "base_model")}
    sub = Submission(team=job.team, spec=spec, model=job.model, seed=job.seed, source="native", suffix=job.suffix,
                     metadata={"resumed_from": job.id, "resumed_step": str(step)},
                     priority_class=job.priority_class, pool=job.pool, preemptible=job.preemptible)
    new = factory.create_job(session, sub, key_id=who.key_id)
    _seed_run_dir(settings, source, new.id, checkpoint, step)
    return new


def _seed_run_dir(settings: JobSettings, source, job_id: str, checkpoint, step: int) -> None:
    target = settings.run_dir(job_id)
    (target / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copytree(checkpoint, target / "checkpoints" / checkpoint.name)
    for name in SEEDED_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    metrics = source / "metrics.jsonl"
    if metrics.is_file():
        kept = [line for line in metrics.read_text(encoding="utf-8").splitlines() if _step_of(line) <= step]
        (target / "metrics.jsonl").write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step") or 0)
    except (ValueError, AttributeError, TypeError):
        return 10**12  # an unreadable line is left out
