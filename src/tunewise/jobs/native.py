"""The native job request (`POST /api/jobs`, trigger templates): a full job spec with every method.

Data files in the spec are file ids of the caller's team (`data.train: file-abc...`); the base
model is one the server offers (`model`). Priority, pool and (for the admin) team ride beside it.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.jobs.keys import Principal
from tunewise.jobs.openai_jobs import SUFFIX
from tunewise.jobs.submit import Submission
from tunewise.openai_api.errors import APIError, bad_request


class NativeJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=100, description="A base model this server offers (default: the first).")
    spec: dict[str, Any] = Field(description="Job spec fields (method, data, train, checkpoint, eval, tracking, "
                                 "stages); data.train and data.validation are file ids.")
    priority: str | None = Field(None, max_length=32, description="Priority class (see GET /api/cluster).")
    pool: str | None = Field(None, max_length=64, description="Pool to run in (default: the first declared).")
    team: str | None = Field(None, max_length=40, description="Team that owns the job (admin key only).")
    preemptible: bool = Field(True, description="May be stopped (checkpointed) for a higher-priority job.")
    suffix: str | None = Field(None, max_length=64, description="Part of the fine-tuned model's name.")
    metadata: dict[str, str] | None = Field(None, max_length=16)


def native_submission(request: NativeJobRequest, principal: Principal, models: dict[str, str], *,
                      source: str = "native", trigger_id: str | None = None) -> Submission:
    if request.team and not principal.is_admin and request.team != principal.team:
        raise APIError(403, "team: only the admin key may act for another team", param="team",
                       code="permission_denied")
    if request.suffix is not None and not SUFFIX.match(request.suffix):
        raise bad_request("suffix: up to 64 letters, digits, '.', '_' or '-'", param="suffix")
    spec = dict(request.spec)
    for key in ("name", "base_model"):
        if key in spec:
            raise bad_request(f"spec.{key}: set by the server (the job id names the run; `model` picks the base)",
                              param=f"spec.{key}")
    train = spec.get("train") if isinstance(spec.get("train"), dict) else {}
    seed = train.get("seed") if isinstance(train.get("seed"), int) else random.randint(0, 2**31 - 1)
    spec["train"] = {**train, "seed": seed}
    model = request.model or next(iter(models))
    return Submission(team=request.team or principal.team, spec=spec, model=model, seed=seed, source=source,
                      suffix=request.suffix, metadata=request.metadata, priority_class=request.priority,
                      pool=request.pool, preemptible=request.preemptible, trigger_id=trigger_id)
