"""`POST /v1/fine_tuning/jobs` as a `Submission`: files checked, method mapped, extras merged."""

from __future__ import annotations

import random
import re
from typing import Any

from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.files import get_file
from tunewise.jobs.graders import check_grader, write_grader_module
from tunewise.jobs.keys import Principal
from tunewise.jobs.openai_request import OPENAI_METHODS, method_of, method_options, training_overrides
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.submit import Submission, deep_merge, split_extras
from tunewise.openai_api.errors import bad_request
from tunewise.openai_api.fine_tuning import JobCreate

SUFFIX = re.compile(r"^[A-Za-z0-9._-]{0,64}$")


def openai_submission(session: Session, settings: JobSettings, request: JobCreate, principal: Principal) -> Submission:
    extras, scheduling = split_extras(request.tunewise, is_admin=principal.is_admin, param="tunewise")
    scope = scheduling.get("team") or principal.scope()
    training = get_file(session, request.training_file, scope, param="training_file")
    team = scheduling.get("team") or (training.team if principal.is_admin else principal.team)
    if request.validation_file:
        get_file(session, request.validation_file, team, param="validation_file")
    if request.suffix is not None and not SUFFIX.match(request.suffix):
        raise bad_request("suffix: up to 64 letters, digits, '.', '_' or '-' (it becomes part of the model name)",
                          param="suffix")
    _check_metadata(request.metadata)
    method_type, hyper, echo = method_of(request)
    method_name = settings.supervised_method if method_type == "supervised" else OPENAI_METHODS[method_type]
    method: dict[str, Any] = {"name": method_name, **method_options(method_type, hyper)}
    method = deep_merge(method, extras.pop("method", None) or {})
    from tunewise.methods import get_method

    default_lr = get_method(method["name"]).default_learning_rate
    n_examples = int((training.report or {}).get("rows_kept") or 0)
    seed = request.seed if request.seed is not None else random.randint(0, 2**31 - 1)
    wandb = _wandb_options(request.integrations)
    spec = {
        "method": method,
        "data": {"train": request.training_file, **({"validation": request.validation_file}
                                                     if request.validation_file else {})},
        "train": {"seed": seed, **training_overrides(method_type, hyper, n_examples=n_examples, default_lr=default_lr)},
        "checkpoint": {"every_steps": settings.checkpoint_every_steps, "keep_last": settings.checkpoints_kept,
                       "keep_best": 0},
        "eval": {"enabled": settings.evaluate},
        "tracking": {"enabled": settings.tracking, **({"report_to": ["wandb"], "wandb": wandb} if wandb else {})},
    }
    job_id = ids.new_id(ids.JOB)
    trusted: dict[str, Any] = {}
    if method_type == "reinforcement":
        grader = check_grader(request.method.reinforcement.grader)
        trusted = {"method": {"reward_functions": [write_grader_module(settings.job_dir(job_id), grader)]}}
    return Submission(
        team=team, spec=deep_merge(spec, extras), model=request.model, seed=seed, source="openai",
        training_file=request.training_file, validation_file=request.validation_file, suffix=request.suffix,
        metadata=request.metadata, integrations=[i.model_dump(exclude_none=True) for i in request.integrations or []],
        method=echo, priority_class=scheduling.get("priority"), pool=scheduling.get("pool"),
        preemptible=bool(scheduling.get("preemptible", True)), job_id=job_id, trusted=trusted)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    for key, value in (metadata or {}).items():
        if len(key) > 64:
            raise bad_request(f"metadata: key {key[:20]!r}... is longer than 64 characters", param="metadata")
        if len(value) > 512:
            raise bad_request(f"metadata.{key}: value longer than 512 characters", param=f"metadata.{key}")


def _wandb_options(integrations: list[Any] | None) -> dict[str, Any] | None:
    """A wandb integration as the job's `tracking.wandb`: the run logs its metrics to W&B as well.

    Refused at creation (not after the job has queued) when this server cannot import wandb: the
    training processes run in the server's environment.
    """
    from tunewise.tracking import target_installed

    found = None
    for index, item in enumerate(integrations or []):
        if item.type != "wandb":
            continue
        if not target_installed("wandb"):
            raise bad_request(f"integrations[{index}].type: wandb is not installed on this server (its operator "
                              "can add it with pip install 'tunewise[wandb]')", param=f"integrations[{index}].type",
                              code="integration_not_available")
        found = item.wandb.model_dump(exclude_none=True)
    return found
