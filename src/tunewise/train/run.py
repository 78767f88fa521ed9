"""The train stage: JobSpec in, a run directory with metrics, checkpoints and an artifact out.

Re-running the same command resumes the same run from its newest complete checkpoint. A spec with
`stages:` (see tunewise.spec_stages) runs each stage as its own run, `<name>-<i>-<method>`, so a
re-run skips finished stages and resumes the one that was interrupted. The first stage starts from
`base_model`; each later one from the previous stage's artifact, merged into full weights
(`<previous run>/merged`), which is also the reference policy DPO-style methods compare to.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import SpecError
from tunewise.logs import routed, run_log_path
from tunewise.spec import JobSpec, load_spec, resolve_relative_paths
from tunewise.spec_stages import stage_dicts
from tunewise.train.allocator import active_allocator
from tunewise.train.building_blocks import RunResult, read_status, write_status
from tunewise.train.stop import TrainingStopped
from tunewise.workspace import runs_dir

console = Console(stderr=True)
MERGED_DIR = "merged"  # a stage's adapter merged into its base, where the next stage starts


def run_name_for(spec: JobSpec, spec_path: str | Path | None) -> str:
    """The spec's name, else `<file stem>-<content hash>`: the same command finds the same run."""
    if spec.name:
        return spec.name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(spec_path).stem if spec_path else "").lstrip("._-")[:60] or "job"
    return f"{stem}-{spec.content_hash()}"


def resolved_spec(spec: JobSpec) -> JobSpec:
    """Fill the method-dependent defaults so the stored spec shows what actually ran."""
    resolved = spec.model_copy(deep=True)
    resolved.train.learning_rate = spec.resolved_learning_rate()
    cfg = spec.method_config()
    if getattr(cfg, "alpha", "absent") is None:
        setattr(resolved.method, "alpha", cfg.resolved_alpha)
    return resolved


def prepare_run_dir(spec: JobSpec, spec_path: str | Path | None, restart: bool) -> tuple[Path, bool]:
    """Create or reopen the run directory. Returns (run_dir, already_completed)."""
    run_dir = runs_dir() / run_name_for(spec, spec_path)
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    stored = run_dir / "spec.yaml"
    if stored.is_file():
        previous = load_spec(stored)
        if previous.content_hash() != resolved_spec(spec).content_hash():
            raise SpecError(
                f"run {run_dir.name!r} already exists with a different spec",
                hint="give the job another name, or pass --restart to discard the old run",
            )
        if previous.resources != spec.resources:  # how it trains changed (not what): record what runs now
            stored.write_text(resolved_spec(spec).to_yaml())
        return run_dir, read_status(run_dir).get("state") == "completed"
    run_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(resolved_spec(spec).to_yaml())
    return run_dir, False


def run_training_job(spec: JobSpec, *, spec_path: str | Path | None = None, restart: bool = False) -> RunResult:
    """Train (resuming if possible), write the artifact, then evaluate and apply the gate.

    A run whose gate fails ends in state "failed": it trained, but it is not fit to promote.
    A spec with `stages:` runs each stage as its own run, in order, and returns the last one's result.
    What other libraries log while the run trains and is evaluated goes to `<run>/run.log`.
    """
    if spec.stages:
        staged = spec.model_dump(mode="json", exclude_unset=True)
        return run_stages(staged, spec_path=spec_path, restart=restart)[-1]
    run_dir, done = prepare_run_dir(spec, spec_path, restart)
    if spec.resources.nnodes > 1 and spec.resources.resolved_node_rank() > 0:
        return _train(resolved_spec(spec), run_dir)  # node 0 owns status, tracking and evaluation
    if done:
        console.print(f"run [bold]{run_dir.name}[/] is already complete: {run_dir}")
        return RunResult(run_dir, "completed", read_status(run_dir).get("step", 0), already_done=True)
    with routed(run_log_path(run_dir)):
        return _run(spec, run_dir)


def _run(spec: JobSpec, run_dir: Path) -> RunResult:
    write_status(run_dir, state="running", method=spec.method.name, base_model=spec.base_model,
                 started_at=read_status(run_dir).get("started_at", time.time()), pid=os.getpid(), reason=None,
                 allocator=active_allocator())
    spec = resolved_spec(spec)
    tracking = _Tracking(run_dir, spec)
    try:
        result = _train(spec, run_dir)
        write_status(run_dir, state="completed", step=result.steps, finished_at=time.time())
        if spec.eval.enabled:
            result.state = _evaluate(run_dir, spec, tracking)
    except TrainingStopped as stopped:
        write_status(run_dir, state="stopped", step=stopped.step or read_status(run_dir).get("step", 0),
                     reason=stopped.message)
        tracking.close("killed")
        raise
    except BaseException as err:
        write_status(run_dir, state="failed", error=str(err).splitlines()[0] if str(err) else type(err).__name__,
                     finished_at=time.time())
        tracking.close("failed")
        raise
    tracking.close(result.state)
    return result


def _train(spec: JobSpec, run_dir: Path) -> RunResult:
    from tunewise.methods import get_method
    from tunewise.train.session import TrainingSession

    from tunewise.scale.ray_cluster import RayOptions

    ray = RayOptions.from_env()  # the Ray executor: the processes are Ray Train workers on its cluster
    if ray is not None or spec.resources.world_size > 1:
        from tunewise.scale.launch import launch_training
        from tunewise.scale.ray_train import train_on_ray

        launched = train_on_ray(spec, run_dir, ray) if ray is not None else launch_training(spec, run_dir)
        return RunResult(run_dir, "completed", launched.steps, resumed_from=launched.resumed_from)
    method = get_method(spec.method.name)
    if method.trainer is not None:
        return method.trainer(spec, run_dir)
    return TrainingSession(spec, run_dir).run()


def _evaluate(run_dir: Path, spec: JobSpec, tracking: _Tracking) -> str:
    """Evaluate the artifact, apply the gate, store both; returns the run's final state.

    Methods whose artifact the evaluation does not fit (a reward model) skip it; status.json says why.
    """
    from tunewise.eval import evaluate_run, run_gate, write_results
    from tunewise.methods import get_method

    console.rule("[bold]evaluation")
    skip_reason = get_method(spec.method.name).eval_skip_reason
    if skip_reason:
        console.print(f"skipped: {skip_reason}")
        write_status(run_dir, eval_skipped=skip_reason)
        return "completed"
    report = evaluate_run(run_dir, spec)
    verdict = run_gate(report, spec.eval)
    write_results(run_dir, report, verdict)
    tracking.log_eval(report, verdict)
    for name, value in sorted(report.flat_metrics().items()):
        if not name.startswith(("spectrum.", "judge.ci")):
            console.print(f"  {name:32} {value:.4g}" if isinstance(value, float) else f"  {name:32} {value}")
    colour = "green" if verdict.passed else "red"
    console.print(f"[{colour}]gate[/] {verdict.summary()}")
    return "completed" if verdict.passed else "failed"


class _Tracking:
    """MLflow tracking for one run: per-step metrics as they are written, eval, artifacts, status."""

    def __init__(self, run_dir: Path, spec: JobSpec):
        from tunewise import tracking
        from tunewise.train.metrics_log import subscribe

        self._tracking = tracking
        wanted = spec.tracking.enabled or spec.tracking.report_to  # report_to (wandb, tensorboard) works without MLflow
        self.handle = tracking.start_run(run_dir, spec) if wanted else None
        self._unsubscribe = (
            subscribe(run_dir / "metrics.jsonl", lambda row: tracking.log_metrics(self.handle, row, row["step"]))
            if self.handle is not None else (lambda: None)
        )

    def log_eval(self, report: Any, verdict: Any) -> None:
        if self.handle is not None:
            self._tracking.log_eval(self.handle, report, verdict)

    def close(self, state: str) -> None:
        self._unsubscribe()
        if self.handle is None:
            return
        try:
            self._tracking.log_artifacts(self.handle)
        finally:
            self._tracking.end_run(self.handle, state)


# --- chained stages ------------------------------------------------------------------------------


def run_stages(raw: dict[str, Any] | str | Path, *, overrides: list[str] | None = None, restart: bool = False,
               spec_path: str | Path | None = None) -> list[RunResult]:
    """Run every stage of a staged spec in order; returns their RunResults.

    Args:
        raw: the staged spec (a mapping, or a YAML file path).
        overrides: dotted overrides applied to every stage (e.g. train.device=cpu).
        restart: discard and redo every stage's run.
        spec_path: where the spec came from (relative data paths resolve from its folder; default name).
    """
    if not isinstance(raw, dict):
        spec_path = Path(raw)
        raw = load_spec(spec_path).model_dump(mode="json", exclude_unset=True)  # every stage checked up front
    job_name = raw.get("name") or (Path(spec_path).stem if spec_path else "job")
    base_folder = Path(spec_path).parent if spec_path else Path.cwd()
    results: list[RunResult] = []
    start_from = raw.get("base_model")
    for i, stage in enumerate(stage_dicts(raw, job_name=job_name)):
        if i > 0:
            stage["base_model"] = str(handoff(results[-1].run_dir))
        elif start_from is not None:
            stage["base_model"] = start_from
        spec = load_spec(raw=resolve_relative_paths(stage, base_folder), overrides=overrides)
        console.rule(f"[bold]stage {i + 1}: {spec.method.name} ({spec.name})")
        results.append(run_training_job(spec, restart=restart))
    return results


def handoff(run_dir: Path) -> Path:
    """The model the next stage starts from: the run's full-weight artifact, or its adapter merged
    into the base (written once to `<run>/merged`)."""
    from tunewise.models.artifact import read_artifact_info
    from tunewise.models.merge import merge_run

    info = read_artifact_info(run_dir)
    if not info.adapter:
        return info.path
    merged = Path(run_dir) / MERGED_DIR
    if (merged / "config.json").is_file():
        return merged
    console.print(f"merging the {info.method} adapter of {Path(run_dir).name} into its base for the next stage")
    return merge_run(run_dir, merged)
