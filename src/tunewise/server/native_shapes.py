"""Response shapes of the native API (`/api/...`): what the OpenAI objects do not carry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tunewise.openai_api.fine_tuning import JobStatus


class QueueInfo(BaseModel):
    position: int | None = Field(None, description="1-based place in its pool's queue while it waits.")
    reason: str | None = Field(None, description="Why it waits: quota, memory, gang, priority or capacity.")
    detail: str | None = Field(None, description="The reason in words.")
    estimated_start: float | None = Field(None, description="Seconds since the epoch, when the scheduler knows.")


class NativeJob(BaseModel):
    id: str
    object: Literal["tunewise.job"] = "tunewise.job"
    team: str
    status: JobStatus
    source: str
    model: str
    fine_tuned_model: str | None = None
    method: str
    priority: str
    priority_value: int
    pool: str
    preemptible: bool
    queue: QueueInfo
    step: int | None = None
    total_steps: int | None = None
    estimated_finish: float | None = None
    attempts: int
    failures: int
    placement: dict[str, Any] | None = None
    borrowed: bool
    stopping: str | None = Field(None, description="preempt, pause or cancel while the job winds down.")
    demand: dict[str, Any] | None = None
    files: list[str]
    spec: dict[str, Any] = Field(description="The job spec as it trains (file ids in place of stored paths).")
    hyperparameters: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    trigger_id: str | None = None
    rollout: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class NativeJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[NativeJob]
    has_more: bool


class DryRun(BaseModel):
    object: Literal["tunewise.dry_run"] = "tunewise.dry_run"
    ok: bool = Field(description="The job would be accepted and could start.")
    error: dict[str, Any] | None = Field(None, description="Why not: {code, message, param}.")
    validation: dict[str, Any] = Field(description="The data pipeline's report per file.")
    examples: int
    tokens: int = Field(description="Tokens in the training data, per epoch.")
    resolved: dict[str, Any] = Field(description="The spec with the method's defaults filled in.")
    hyperparameters: dict[str, Any] = Field(description="In OpenAI's terms: batch_size, "
                                            "learning_rate_multiplier, n_epochs.")
    plan: dict[str, Any] | None = Field(None, description="The planner's memory, time and cost per mode.")
    demand: dict[str, Any] | None = None
    queue: QueueInfo | None = Field(None, description="Where the job would stand if submitted now.")
    would_start_now: bool = False
    warnings: list[str] = Field(default_factory=list, description="Values outside the usual range for the "
                                "method, each with the reason.")


class PoolView(BaseModel):
    name: str
    nodes: list[dict[str, Any]]
    running: list[dict[str, Any]]
    waiting: list[dict[str, Any]]


class ClusterView(BaseModel):
    object: Literal["tunewise.cluster"] = "tunewise.cluster"
    pools: list[PoolView]
    quotas: list[dict[str, Any]]
    priority_classes: dict[str, int]
    default_priority_class: str
    models: list[str]
