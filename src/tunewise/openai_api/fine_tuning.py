"""Fine-tuning jobs, events and checkpoints as OpenAI shapes them (`openai.types.fine_tuning`).

Requests (`JobCreate`) refuse unknown fields, as OpenAI does, except `tunewise`: the extras a
client sends with `extra_body={"tunewise": {...}}` (any job spec field, priority, pool).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
Auto = Literal["auto"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisedHyperparameters(_Request):
    batch_size: Auto | int | None = Field(None, description="Examples per optimizer step; auto: the method's "
                                          "default, shrunk by the planner into micro-batches that fit.")
    learning_rate_multiplier: Auto | float | None = Field(None, description="Times the method's default "
                                                          "learning rate (2e-4 for LoRA).")
    n_epochs: Auto | int | None = Field(None, description="Passes over the data; auto: OpenAI's rule from the "
                                        "number of examples (3, more for small sets, fewer for large).")


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Auto | float | None = Field(None, description="Pull towards the reference model (auto: 0.1).")


class ReinforcementHyperparameters(SupervisedHyperparameters):
    compute_multiplier: Auto | float | None = None
    eval_interval: Auto | int | None = None
    eval_samples: Auto | int | None = None
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = None


class SupervisedMethod(_Request):
    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(_Request):
    hyperparameters: DpoHyperparameters | None = None


class ReinforcementMethod(_Request):
    grader: dict[str, Any] = Field(description="An OpenAI grader; string_check and text_similarity against a fixed "
                                   "reference become tunewise scoring rules, the others are refused.")
    hyperparameters: ReinforcementHyperparameters | None = None


class Method(_Request):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None


class WandbIntegration(_Request):
    project: str = Field(min_length=1, max_length=200)
    entity: str | None = None
    name: str | None = None
    tags: list[str] | None = None


class Integration(_Request):
    type: Literal["wandb"]
    wandb: WandbIntegration


class JobCreate(_Request):
    model: str = Field(min_length=1, max_length=255, description="A base model this server offers.")
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(None, max_length=64)
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    integrations: list[Integration] | None = Field(None, max_length=10)
    method: Method | None = None
    hyperparameters: SupervisedHyperparameters | None = Field(None, description="Deprecated: moved into "
                                                              "method.supervised.hyperparameters.")
    tunewise: dict[str, Any] | None = Field(None, description="tunewise extras: job spec fields (train, data, "
                                            "method options, checkpoint, eval), priority, pool, team (admin only).")


# --- responses ------------------------------------------------------------------------------------


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobHyperparameters(BaseModel):
    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    n_epochs: Auto | int | None = None


class MethodOut(BaseModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class IntegrationOut(BaseModel):
    type: Literal["wandb"]
    wandb: dict[str, Any]


class FineTuningJob(BaseModel):
    id: str
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: JobHyperparameters
    model: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[IntegrationOut] | None = None
    metadata: dict[str, str] | None = None
    method: MethodOut | None = None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    data: dict[str, Any] | None = None
    type: Literal["message", "metrics"] | None = None


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class CheckpointMetrics(BaseModel):
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    step_number: int


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
