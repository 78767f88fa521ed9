"""`tunewise server --config server.yaml`: every field has a default, so an empty file (or none) works.

    host: 127.0.0.1
    port: 8000
    database_url: null          # SQLite in the workspace; postgresql://user@host/db for shared deployments
    files_url: null             # <workspace>/files; or s3://bucket/prefix (needs s3fs)
    models: {smollm2-135m-instruct: smollm2-135m-instruct}   # name clients use -> base model
    scheduling: {...}           # pools, quotas, priority classes (docs/scheduling.md)
    webhooks: {url: https://..., secret_env: TUNEWISE_WEBHOOK_SECRET}
    portal: {enabled: true, session_hours: 12}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunewise.errors import SpecError
from tunewise.spec import BUNDLED_MODEL, problem_lines

MIB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Section):
    max_file_bytes: int = Field(512 * MIB, ge=1, description="Largest file POST /v1/files accepts (OpenAI: 512 MB).")
    max_upload_bytes: int = Field(8 << 30, ge=1, description="Largest file an Upload may assemble (OpenAI: 8 GB).")
    max_part_bytes: int = Field(64 * MIB, ge=1, description="Largest Upload part (OpenAI: 64 MB).")
    max_request_bytes: int = Field(4 * MIB, ge=1024, description="Largest JSON request body.")


class JobsConfig(_Section):
    supervised_method: str = Field("lora", description="What OpenAI's `supervised` trains (lora, qlora, dora, full).")
    checkpoint_every_steps: int = Field(50, ge=1, description="Checkpoint interval of API jobs (a spec may override).")
    checkpoints_kept: int = Field(3, ge=1, description="Newest checkpoints kept per job (OpenAI keeps three).")
    evaluate: bool = Field(False, description="Run tunewise's evaluation and gate after each API job.")
    tracking: bool = Field(False, description="Log API jobs to MLflow.")
    min_examples: int = Field(10, ge=1, description="Fewest training examples a job may have (OpenAI: 10).")
    max_retries: int = Field(3, ge=0, description="Crashes retried from the last checkpoint before a job fails.")
    retry_backoff_seconds: float = Field(10.0, ge=0, description="Wait before the first retry; doubled each time.")
    stop_grace_seconds: float = Field(120.0, gt=0, description="A job asked to checkpoint and stop is killed after this.")


class WebhooksConfig(_Section):
    url: str | None = Field(None, description="POST job events here (fine_tuning.job.succeeded|failed|cancelled).")
    secret_env: str = Field("TUNEWISE_WEBHOOK_SECRET", description="Environment variable holding the signing secret.")
    events: list[str] = Field(default_factory=lambda: ["fine_tuning.job.succeeded", "fine_tuning.job.failed",
                                                       "fine_tuning.job.cancelled"])
    max_attempts: int = Field(8, ge=1, description="Deliveries tried before giving up.")
    backoff_seconds: float = Field(5.0, ge=0, description="Wait before the first retry; doubled each time.")
    timeout_seconds: float = Field(10.0, gt=0)


class PortalConfig(_Section):
    enabled: bool = Field(True, description="Serve the web portal at / (docs/portal.md).")
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="How long a sign-in lasts.")


class ExecutorConfig(_Section):
    kind: str = Field("local", description="local: each job a `tunewise train` process on this machine.")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of that executor.")


class ServerConfig(_Section):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 for every interface).")
    port: int = Field(8000, ge=0, le=65535)
    workspace: str | None = Field(None, description="Workspace directory; default TUNEWISE_HOME (./.tunewise).")
    database_url: str | None = Field(None, description="Job store URL; default SQLite at <workspace>/tunewise.db.")
    files_url: str | None = Field(None, description="Where uploaded files live; default <workspace>/files.")
    models: dict[str, str] = Field(default_factory=lambda: {BUNDLED_MODEL: BUNDLED_MODEL},
                                   description="Base models clients may fine-tune: name -> bundled name, model "
                                   "directory or hub id.")
    tick_seconds: float = Field(1.0, gt=0, le=60, description="Scheduling loop interval.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    scheduling: dict[str, Any] = Field(default_factory=dict, description="Pools, quotas, priority classes and "
                                       "the scheduler's switches (docs/scheduling.md).")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    serving: dict[str, Any] = Field(default_factory=dict, description="Options of the serving engine.")
    portal: PortalConfig = Field(default_factory=PortalConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or ":" in name or len(name) > 100:
                raise ValueError(f"model name {name!r}: 1-100 characters without ':' (it is part of ft: model ids)")
        if not value:
            raise ValueError("offer at least one base model")
        return value

    def workspace_path(self) -> Path:
        root = self.workspace or os.environ.get("TUNEWISE_HOME", ".tunewise")
        path = Path(root).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ServerConfig:
    """The server config from a YAML file (all fields optional), with `overrides` on top."""
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise SpecError(f"{file}: server config not found")
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise SpecError(f"{file}:{mark.line + 1 if mark else '?'}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise SpecError(f"{file}: a server config is a mapping of sections")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ServerConfig.model_validate(raw)
    except ValidationError as err:
        source = str(path) if path else "server config"
        raise SpecError(f"{source}: invalid server config\n" + "\n".join(f"  {l}" for l in problem_lines(err))) from None
