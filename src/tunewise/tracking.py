"""Experiment tracking on MLflow: params, per-step metrics, artifacts; W&B / TensorBoard on request.

Embedded by default: a SQLite store at `$TUNEWISE_HOME/mlflow.db` and artifacts under
`$TUNEWISE_HOME/mlartifacts`. A remote server is used when `TUNEWISE_MLFLOW_URI` is set, or
`mlflow_uri:` in `$TUNEWISE_HOME/config.yaml`. The training loop calls, in order:

    handle = start_run(run_dir, spec)
    log_metrics(handle, {"train_loss": 1.9, "lr": 2e-4}, step=10)     # every logging step
    log_eval(handle, report, verdict)                                   # after the gate
    log_artifacts(handle)                                               # spec, eval report, loss curve...
    end_run(handle, "completed")                                        # or "failed"

The MLflow run id is kept in `<run>/tracking.json`, so a resumed run, `tunewise eval` and
`tunewise register` continue the same MLflow run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunewise.errors import TunewiseError
from tunewise.tracking_wandb import WandbSpec, open_wandb_run

TRACKING_FILE = "tracking.json"
DEFAULT_EXPERIMENT = "tunewise"
STANDARD_ARTIFACTS = ("spec.yaml", "status.json", "data_report.json", "eval.json", "gate.json", "report.html")
_STATUS = {"completed": "FINISHED", "failed": "FAILED", "killed": "KILLED", "running": "RUNNING"}
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


class TrackingError(TunewiseError):
    """The tracking server or store cannot be used."""


class TrackingSpec(BaseModel):
    """The `tracking:` section of a job spec."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="Log the run to MLflow.")
    experiment: str = Field(DEFAULT_EXPERIMENT, description="MLflow experiment name.")
    report_to: list[Literal["wandb", "tensorboard"]] = Field(
        default_factory=list, description="Also send metrics to these, when their packages are installed."
    )
    wandb: WandbSpec = Field(default_factory=WandbSpec, description="Project, name, entity and tags for wandb.")


@dataclass
class TrackingHandle:
    run_dir: Path
    run_id: str | None  # None when MLflow tracking is disabled
    experiment_id: str | None
    tracking_uri: str | None
    client: Any = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)  # "wandb" run, "tensorboard" writer


def _quiet_mlflow() -> None:
    # MLflow logs database migrations and registry chatter at INFO; none of it helps a CLI user.
    # Importing mlflow configures its logger, so the level is set after the import.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401

    for name in ("mlflow", "alembic", "alembic.runtime.migration", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from tunewise.logs import quiet_libraries

    quiet_libraries()  # inside a routed scope: mlflow's warnings to the log file, not its own stderr handler


def tracking_uri() -> str:
    """TUNEWISE_MLFLOW_URI, else `mlflow_uri` in the workspace config.yaml, else the embedded SQLite store."""
    from tunewise.workspace import home

    uri = os.environ.get("TUNEWISE_MLFLOW_URI")
    if uri:
        return uri
    config = home() / "config.yaml"
    if config.is_file():
        import yaml

        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if isinstance(loaded, dict) and loaded.get("mlflow_uri"):
            return str(loaded["mlflow_uri"])
    return f"sqlite:///{home() / 'mlflow.db'}"


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def mlflow_client(uri: str | None = None) -> Any:
    """An MlflowClient on the tracking store, also used as the model registry."""
    _quiet_mlflow()
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: Any, name: str = DEFAULT_EXPERIMENT, uri: str | None = None) -> str:
    """The experiment's id, created on first use (artifacts under $TUNEWISE_HOME/mlartifacts when embedded)."""
    from mlflow.exceptions import MlflowException

    from tunewise.workspace import home

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (home() / "mlartifacts").as_uri() if is_embedded(uri or tracking_uri()) else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def _tracking_spec(spec: Any) -> TrackingSpec:
    section = spec.get("tracking") if isinstance(spec, dict) else getattr(spec, "tracking", None)
    if section is None:
        return TrackingSpec()
    if isinstance(section, TrackingSpec):
        return section
    return TrackingSpec.model_validate(section.model_dump() if isinstance(section, BaseModel) else section)


def _spec_dict(spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    if isinstance(spec, BaseModel):
        return spec.model_dump(mode="json")
    return dict(spec)


def flatten_params(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested spec -> {"train.learning_rate": "0.0002", ...} with values cut to MLflow's limit."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[name] = text[:_MAX_PARAM_CHARS]
    return out


def start_run(run_dir: str | Path, spec: Any = None, *, report_to: list[str] | None = None) -> TrackingHandle:
    """Open (or reopen, after a resume) the MLflow run for `run_dir` and log the spec as params.

    spec: the JobSpec or its dict; its `tracking` section picks the experiment and `report_to`.
    """
    run_dir = Path(run_dir)
    tspec = _tracking_spec(spec)
    handle = TrackingHandle(run_dir=run_dir, run_id=None, experiment_id=None, tracking_uri=None)
    if tspec.enabled:
        _open_mlflow_run(handle, tspec.experiment, _spec_dict(spec))
    for target in report_to if report_to is not None else tspec.report_to:
        _open_extra(handle, target, _spec_dict(spec), tspec)
    return handle


def _open_mlflow_run(handle: TrackingHandle, experiment: str, spec: dict[str, Any]) -> None:
    from mlflow.entities import Param, RunTag

    previous = _read_tracking_file(handle.run_dir)
    uri = previous.get("tracking_uri") or tracking_uri()
    try:
        client = mlflow_client(uri)
        if previous.get("run_id"):
            run_id, exp_id = previous["run_id"], previous["experiment_id"]
            client.update_run(run_id, status="RUNNING")
        else:
            exp_id = experiment_id(client, experiment, uri)
            tags = {"tunewise.run_dir": str(handle.run_dir.resolve()), "mlflow.runName": handle.run_dir.name}
            for key in ("method", "base_model"):
                value = spec.get(key)
                tags[f"tunewise.{key}"] = str(value.get("name") if isinstance(value, dict) else value)
            run_id = client.create_run(exp_id, run_name=handle.run_dir.name, tags=tags).info.run_id
            params = [Param(k, v) for k, v in flatten_params(spec).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                client.log_batch(run_id, params=params[start : start + 100])
            client.log_batch(run_id, tags=[RunTag("tunewise.spec_json", json.dumps(spec)[:_MAX_PARAM_CHARS])])
    except Exception as err:
        if isinstance(err, TunewiseError):
            raise
        raise TrackingError(f"MLflow tracking at {uri} failed: {type(err).__name__}: {err}",
                            hint="unset TUNEWISE_MLFLOW_URI to use the embedded store, or set tracking.enabled: false") from None
    handle.client, handle.run_id, handle.experiment_id, handle.tracking_uri = client, run_id, exp_id, uri
    _write_tracking_file(handle)


def _read_tracking_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_tracking_file(handle: TrackingHandle) -> None:
    payload = {"tracking_uri": handle.tracking_uri, "experiment_id": handle.experiment_id, "run_id": handle.run_id}
    (handle.run_dir / TRACKING_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def resume_run(run_dir: str | Path) -> TrackingHandle | None:
    """The handle of a run tracked earlier (from tracking.json), without changing its status; else None."""
    run_dir = Path(run_dir)
    previous = _read_tracking_file(run_dir)
    if not previous.get("run_id"):
        return None
    client = mlflow_client(previous["tracking_uri"])
    return TrackingHandle(run_dir, previous["run_id"], previous["experiment_id"], previous["tracking_uri"], client)


def log_metrics(handle: TrackingHandle, metrics: dict[str, Any], step: int) -> None:
    """Log numeric values (None, NaN and non-numbers are skipped) at optimizer step `step`."""
    import time

    values = {k: float(v) for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if not values:
        return
    if handle.run_id:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        handle.client.log_batch(handle.run_id, metrics=[Metric(k, v, now_ms, step) for k, v in values.items()])
    if "tensorboard" in handle.extras:
        for key, value in values.items():
            handle.extras["tensorboard"].add_scalar(key, value, step)
    if "wandb" in handle.extras:
        handle.extras["wandb"].log(values, step=step)


def log_eval(handle: TrackingHandle, report: Any, verdict: Any = None) -> None:
    """Eval metrics under `eval.` (base and gain included) and the gate verdict as tags."""
    from mlflow.entities import RunTag

    metrics = {f"eval.{k}": v for k, v in report.flat_metrics().items()}
    step = max(0, int(_last_step(handle.run_dir)))
    log_metrics(handle, metrics, step)
    if handle.run_id and verdict is not None:
        tags = [RunTag("tunewise.gate", "passed" if verdict.passed else "failed"),
                RunTag("tunewise.gate_summary", verdict.summary()[:_MAX_PARAM_CHARS])]
        handle.client.log_batch(handle.run_id, tags=tags)


def _last_step(run_dir: Path) -> int:
    path = run_dir / "status.json"
    if path.is_file():
        try:
            return int(json.loads(path.read_text()).get("step") or 0)
        except (ValueError, json.JSONDecodeError):
            return 0
    return 0


def log_artifacts(handle: TrackingHandle, paths: list[str | Path] | None = None, artifact_path: str | None = None) -> list[str]:
    """Upload files or folders; by default the run's spec, status, data report, eval report, gate
    verdict, HTML report and a freshly drawn loss curve (plots/loss_curve.png). Returns what was logged."""
    if not handle.run_id:  # MLflow is off for this run (report_to targets only): nothing to upload to
        return []
    if paths is None:
        paths = [handle.run_dir / name for name in STANDARD_ARTIFACTS]
        curve = write_loss_curve(handle.run_dir)
        if curve is not None:
            paths.append(curve)
    logged = []
    for item in (Path(p) for p in paths):
        if not item.exists():
            continue
        if item.is_dir():
            handle.client.log_artifacts(handle.run_id, str(item), artifact_path or item.name)
        else:
            handle.client.log_artifact(handle.run_id, str(item), artifact_path)
        logged.append(str(item))
    return logged


def write_loss_curve(run_dir: Path) -> Path | None:
    from tunewise.eval.plots import loss_curve_png
    from tunewise.eval.runs import read_metrics

    png = loss_curve_png(read_metrics(run_dir))
    if png is None:
        return None
    target = run_dir / "plots" / "loss_curve.png"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(png)
    return target


def end_run(handle: TrackingHandle, status: str = "completed") -> None:
    """Close the run: status is completed | failed | killed (or MLflow's FINISHED / FAILED / KILLED)."""
    mlflow_status = _STATUS.get(status, status.upper())
    if handle.run_id:
        handle.client.set_terminated(handle.run_id, status=mlflow_status)
    if "tensorboard" in handle.extras:
        handle.extras.pop("tensorboard").close()
    if "wandb" in handle.extras:
        handle.extras.pop("wandb").finish(exit_code=0 if mlflow_status == "FINISHED" else 1)


def target_installed(target: str) -> bool:
    """Whether a `report_to` target's package (wandb, tensorboard) can be imported here."""
    import importlib.util

    return importlib.util.find_spec(target) is not None


def _open_extra(handle: TrackingHandle, target: str, spec: dict[str, Any], tspec: TrackingSpec) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if target == "tensorboard":
        if not target_installed("tensorboard"):
            console.print("[yellow]report_to: tensorboard is not installed; skipping it[/] (pip install tensorboard)")
            return
        from torch.utils.tensorboard import SummaryWriter

        handle.extras["tensorboard"] = SummaryWriter(log_dir=str(handle.run_dir / "tensorboard"))
    elif target == "wandb":
        if not target_installed("wandb"):
            console.print("[yellow]report_to: wandb is not installed; skipping it[/] (pip install 'tunewise[wandb]')")
            return
        handle.extras["wandb"] = open_wandb_run(handle.run_dir, tspec.wandb, tspec.experiment, spec)
    else:
        console.print(f"[yellow]report_to: unknown target {target!r}; skipping it[/] (known: wandb, tensorboard)")
