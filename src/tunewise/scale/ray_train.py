"""`tunewise train` on a Ray cluster: the job's training processes as Ray Train workers.

When TUNEWISE_RAY_ADDRESS is set (the Ray executor sets it; a user may too), `tunewise train` stays
the job's owner as it is under torchrun: it prepares the run directory, writes status.json, tracks
and evaluates. Only the processes come from elsewhere: this module connects to the cluster as the
job's driver and runs a `TorchTrainer` whose workers join Ray's process group and run tunewise's
own training (scale/worker.py's `train_in_process_group`, the same code torchrun's workers run).

- Placement: `scaling_plan` (one worker per process; STRICT_PACK on one node, the configured
  strategy across nodes), so the gang is reserved whole or not at all.
- Failures: Ray Train restarts the worker group up to `max_failures` times; each new group resumes
  from the last complete checkpoint in the run directory (any world size resumes it).
- Stop requests: SIGTERM to `tunewise train` (the control plane preempting or pausing) writes
  `.launch/stop`; every worker watches for it and asks the loop to stop, so they checkpoint the step
  under way together and end, as torchrun's workers do.
- Cancel: killing `tunewise train` ends the driver; Ray then ends the workers it owned.
- Logs: the workers' output is forwarded to the driver's stdout (the job's log); metrics and
  status are rank 0's files in the run directory, which must be storage every node shares.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.scale.launch import (
    RESULT_FILE,
    LaunchResult,
    TrainingProcessFailed,
    check_launchable,
    console,
    following_metrics,
    prepare_handoff,
    reported_error,
)
from tunewise.scale.ray_cluster import RayOptions, scaling_plan

STOP_FILE = "stop"  # in .launch/: the job was asked to checkpoint and stop
NAMESPACE = "tunewise"
STOP_POLL_S = 0.2  # a stat of one file; a stop request lands within a step or two
PASSED_ENV = ("TUNEWISE_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")  # what the workers need of the driver's environment


def train_on_ray(spec: Any, run_dir: Path, options: RayOptions) -> LaunchResult:
    """Train `spec` as Ray Train workers on the cluster at `options.address` and wait for them.

    Raises the TunewiseError a worker reported (TrainingStopped after a stop request), or
    TrainingProcessFailed when the workers failed more often than `options.max_failures` allows.
    """
    import ray

    from tunewise.train.stop import stop_requested

    check_launchable(spec, shared_run_dir=True)  # Ray's workers write into the run directory wherever they run
    handoff = prepare_handoff(spec, run_dir)
    (handoff / STOP_FILE).unlink(missing_ok=True)
    plan = scaling_plan(spec.resources, options)
    console.print(f"training on the Ray cluster at {options.address}: {plan['num_workers']} worker(s), "
                  f"{plan['placement_strategy']}", highlight=False)
    try:
        ray.init(address=options.address, namespace=NAMESPACE, log_to_driver=True,
                 runtime_env={"env_vars": _worker_env(options)})
    except ConnectionError as err:
        raise TrainingProcessFailed(f"cannot reach the Ray cluster at {options.address}: {err}",
                                    hint="check `ray status --address` from this machine") from None
    try:
        # A stop request to this process (SIGTERM, through tunewise train's handler) becomes the stop file.
        with following_metrics(run_dir / "metrics.jsonl"), _polling(stop_requested, (handoff / STOP_FILE).touch):
            failure = _fit(spec, run_dir, options, plan)
    finally:
        ray.shutdown()
    error = reported_error(handoff, list(range(plan["num_workers"])))
    if error is not None:
        raise error
    if failure is not None:
        raise TrainingProcessFailed(
            f"the Ray Train workers failed (after {options.max_failures} restart(s)): {failure}",
            hint="run the same job again to resume from the last complete checkpoint")
    result = json.loads((handoff / RESULT_FILE).read_text()) if (handoff / RESULT_FILE).is_file() else {}
    return LaunchResult(int(result.get("steps", 0)), result.get("resumed_from"))


def _fit(spec: Any, run_dir: Path, options: RayOptions, plan: dict[str, Any]) -> str | None:
    """Run the trainer to its end; the failure's first line when it gave up, else None."""
    os.environ["RAY_TRAIN_V2_ENABLED"] = "1"  # the API this module is written for (Ray's default since 2.51)
    from ray.train import FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = spec.resources
    backend = resources.backend if resources.backend != "auto" else ("nccl" if plan["use_gpu"] else "gloo")
    storage = options.storage_path or str((run_dir / ".launch" / "ray").resolve())
    trainer = TorchTrainer(
        train_worker, train_loop_config={"run_dir": str(run_dir.resolve())},
        scaling_config=ScalingConfig(**plan),
        torch_config=TorchConfig(backend=backend, timeout_s=int(resources.collective_timeout_s)),
        run_config=RunConfig(name=f"{run_dir.name}-{uuid.uuid4().hex[:8]}", storage_path=storage,
                             failure_config=FailureConfig(max_failures=options.max_failures)))
    try:
        trainer.fit()
    except TrainingFailedError as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def _worker_env(options: RayOptions) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV) and not k.startswith("TUNEWISE_RAY")}
    return {**env, **options.extra_env}


def train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: tunewise's training in the process group Ray Train set up."""
    import ray.train

    from tunewise.logs import routed, run_log_path
    from tunewise.scale.worker import report_error, report_result, train_in_process_group
    from tunewise.train.stop import clear_stop_request, request_stop

    run_dir = Path(config["run_dir"])
    rank = ray.train.get_context().get_world_rank()
    clear_stop_request()
    stop_file = run_dir / ".launch" / STOP_FILE
    # Rank 0 routes other libraries' logging to the run's run.log, as torchrun's rank 0 does.
    logs = routed(run_log_path(run_dir)) if rank == 0 else contextlib.nullcontext()
    with _polling(stop_file.exists, request_stop), logs:  # the stop file is this worker's SIGTERM
        try:
            result = train_in_process_group(run_dir, leave=False)  # Ray Train owns the group
        except TunewiseError as err:
            # Handed back, not raised: a user error or a stop is not a failure for Ray to retry.
            report_error(run_dir, rank, err)
            return
    if rank == 0:
        report_result(run_dir, result)


@contextlib.contextmanager
def _polling(condition: Callable[[], bool], action: Callable[[], Any]) -> Iterator[None]:
    """While the body runs, do `action` once `condition` holds (checked every STOP_POLL_S)."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(STOP_POLL_S):
            if condition():
                action()
                return

    thread = threading.Thread(target=poll, name="tunewise-stop-poll", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
