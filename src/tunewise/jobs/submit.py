"""Creating jobs: from an OpenAI request, from a native spec, or from a trigger's template.

Every path ends in `create_job`: the spec is made safe (`spec_guard`), validated as a JobSpec,
stored with its scheduling fields, and the job starts in `validating_files` with OpenAI's first
events. Validating the data with the model's tokenizer happens next, in the server's loop.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.events import add_event, audit
from tunewise.jobs.files import get_file
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.spec_guard import SpecGuard, validate_spec
from tunewise.jobs.store.models import Job
from tunewise.openai_api.errors import APIError, bad_request, not_found

SCHEDULING_KEYS = ("priority", "pool", "team", "preemptible")
SPEC_SECTIONS = ("method", "data", "train", "checkpoint", "eval", "tracking", "stages")


@dataclass
class Submission:
    """A job to create, whatever API it came through."""

    team: str
    spec: dict[str, Any]  # raw: file ids and model names, not yet guarded
    model: str  # the offered model name the job fine-tunes
    seed: int
    source: str = "native"
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    method: dict[str, Any] | None = None  # the OpenAI method object echoed back
    priority_class: str | None = None
    pool: str | None = None
    preemptible: bool = True
    trigger_id: str | None = None
    job_id: str | None = None  # chosen up front when server-written files must name the job
    trusted: dict[str, Any] = field(default_factory=dict)  # server-made spec fields, merged after the guard


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def split_extras(extras: dict[str, Any] | None, *, is_admin: bool, param: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec fields, scheduling fields) of a request's tunewise extras; `team` is for the admin only."""
    extras = dict(extras or {})
    scheduling = {k: extras.pop(k) for k in SCHEDULING_KEYS if k in extras}
    if "team" in scheduling and not is_admin:
        raise APIError(403, f"{param}.team: only the admin key may act for another team", param=f"{param}.team",
                       code="permission_denied")
    if isinstance(extras.get("method"), str):
        extras["method"] = {"name": extras["method"]}
    for key in ("name", "base_model"):
        if key in extras:
            raise bad_request(f"{param}.{key}: set by the server (the job id names the run; `model` picks the base)",
                              param=f"{param}.{key}")
    return extras, scheduling


class JobFactory:
    """Creates jobs for one server: its settings, its file store and its priority classes."""

    def __init__(self, settings: JobSettings, blobs: BlobStore):
        self.settings = settings
        self.blobs = blobs

    def guard(self, session: Session, scope: str | None) -> SpecGuard:
        def file_path(file_id: str, param: str) -> Path:
            row = get_file(session, file_id, scope, param=param)
            if row.purpose != "fine-tune":
                raise bad_request(f"{param}: file {file_id} has purpose {row.purpose!r}, not 'fine-tune'", param=param)
            return self.blobs.local_path(row.storage_key, self.settings.scratch / "files")

        def run_path(job_id: str, param: str) -> Path:
            stmt = select(Job).where(Job.id == job_id, Job.status == "succeeded")
            if scope is not None:
                stmt = stmt.where(Job.team == scope)
            if session.scalar(stmt) is None:
                raise not_found(f"{param}: no succeeded job {job_id!r} of your team", param=param)
            return self.settings.run_dir(job_id)

        return SpecGuard(models=self.settings.models, file_path=file_path, run_path=run_path)

    def priority(self, name: str | None, param: str) -> tuple[str, int]:
        name = name or self.settings.default_priority_class
        classes = self.settings.priority_classes
        if name not in classes:
            raise bad_request(f"{param}: priority class {name!r} is not defined; classes: {', '.join(classes)}",
                              param=param)
        return name, classes[name]

    def pool(self, name: str | None, param: str) -> str:
        name = name or self.settings.default_pool
        if name not in self.settings.pools:
            raise bad_request(f"{param}: pool {name!r} is not declared; pools: {', '.join(self.settings.pools)}",
                              param=param)
        return name

    def create_job(self, session: Session, sub: Submission, *, key_id: str | None, param: str = "tunewise") -> Job:
        """Store a new job in `validating_files` (nothing runs yet); 4xx naming the field when it cannot run."""
        if sub.model not in self.settings.models:
            raise bad_request(f"model: {sub.model!r} is not offered by this server; available: "
                              f"{', '.join(sorted(self.settings.models))}", param="model", code="model_not_available")
        job_id = sub.job_id or ids.new_id(ids.JOB)
        raw = dict(sub.spec)
        raw["name"] = job_id
        guard = self.guard(session, sub.team)
        guarded = guard.apply({**raw, "base_model": sub.model}, prefix="spec")
        spec = validate_spec(deep_merge(guarded, sub.trusted))
        priority_class, priority = self.priority(sub.priority_class, f"{param}.priority")
        pool = self.pool(sub.pool, f"{param}.pool")
        now = time.time()
        job = Job(id=job_id, team=sub.team, status="validating_files", model=sub.model,
                  training_file=sub.training_file, validation_file=sub.validation_file, files=guard.file_ids,
                  suffix=sub.suffix,
                  seed=sub.seed, job_metadata=sub.metadata, integrations=sub.integrations, method=sub.method,
                  spec=spec.model_dump(mode="json", exclude_unset=True) | {"name": job_id},
                  source=sub.source, model_token=ids.random_token(8), created_at=now,
                  priority_class=priority_class, priority=priority, pool=pool, preemptible=sub.preemptible,
                  trigger_id=sub.trigger_id)
        session.add(job)
        session.flush()
        add_event(session, job.id, f"Created fine-tuning job: {job.id}", at=now)
        for file_id in (sub.training_file, sub.validation_file):
            if file_id:
                add_event(session, job.id, f"Validating training file: {file_id}", at=now)
        if not sub.training_file:
            add_event(session, job.id, "Validating the job's data files", at=now)
        audit(session, team=sub.team, key_id=key_id, action="job.create", object_id=job.id,
              detail={"source": sub.source, "model": sub.model, "priority": priority_class, "pool": pool})
        return job


def fine_tuned_model_id(job: Job) -> str:
    """`ft:<base>:<team>:<suffix>:<token>`, OpenAI's form (the suffix part empty when none was given)."""
    return f"ft:{job.model}:{job.team}:{job.suffix or ''}:{job.model_token}"
