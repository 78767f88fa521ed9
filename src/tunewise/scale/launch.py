"""`tunewise train` with `resources.nproc_per_node` or `resources.nnodes` above 1.

The command that the user (or Kubernetes, on every node) starts stays the job's owner: it prepares
the run directory, tracks and evaluates as for one process, and starts the training processes
through torch.distributed's elastic launcher (torchrun's engine, used in-process, so a failure
comes back as data: which rank, which signal or exit code). The workers (scale/worker.py) train;
rank 0 writes metrics, checkpoint manifests and the artifact. Workers are not restarted: a dead
process ends the job at once, and running the same command again resumes from the last complete
checkpoint, on any number of processes.

A stop request (SIGTERM, as the control plane sends to preempt a job) is passed on to the workers:
they finish the step under way, write a checkpoint for it together and exit, and `tunewise train`
ends with TrainingStopped, as one process does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import SpecError, TunewiseError

console = Console(stderr=True)
LAUNCH_DIR = ".launch"  # inside the run directory: what the launcher hands its workers, and back
RESULT_FILE = "result.json"
STOP_GRACE_S = 10  # a failed job's other workers: how long they may take to stop before SIGKILL


@dataclass
class LaunchResult:
    steps: int  # optimizer steps completed (0 on machines other than node 0, which do not see rank 0's result)
    resumed_from: int | None


class TrainingProcessFailed(TunewiseError):
    """A training process died or failed; the job stopped (the run resumes when started again)."""

    exit_code = 1


def launch_training(spec: Any, run_dir: Path) -> LaunchResult:
    """Train `spec` as this machine's share of `resources` processes and wait for them.

    Raises TrainingProcessFailed naming the first rank that failed and how, or the TunewiseError a
    worker reported.
    """
    resources = spec.resources
    check_launchable(spec)
    node_rank = resources.resolved_node_rank()
    config = launch_config(resources, node_rank, run_id=f"{run_dir.name}-{uuid.uuid4().hex[:8]}")
    handoff = prepare_handoff(spec, run_dir)
    console.print(f"launching {resources.nproc_per_node} training process{'es' if resources.nproc_per_node > 1 else ''}"
                  f" on node {node_rank} of {resources.nnodes} (world size {resources.world_size})")
    with _worker_environment(spec, resources.nproc_per_node), following_metrics(run_dir / "metrics.jsonl"):
        failures = _run_agent(config, run_dir)
    if failures:
        raise _failure_error(failures, handoff, run_dir)
    result = json.loads((handoff / RESULT_FILE).read_text()) if (handoff / RESULT_FILE).is_file() else {}
    return LaunchResult(int(result.get("steps", 0)), result.get("resumed_from"))


def prepare_handoff(spec: Any, run_dir: Path) -> Path:
    """`run_dir/.launch/` with the spec the workers train, cleared of an earlier attempt's reports."""
    handoff = run_dir / LAUNCH_DIR
    handoff.mkdir(parents=True, exist_ok=True)
    (handoff / "spec.json").write_text(spec.model_dump_json())
    for stale in handoff.glob("*.error.json"):
        stale.unlink()
    (handoff / RESULT_FILE).unlink(missing_ok=True)
    return handoff


def launch_config(resources: Any, node_rank: int, *, run_id: str) -> Any:
    """torch's LaunchConfig: one machine meets on a free local port; several meet at the endpoint,
    each with its fixed node rank (static rendezvous, as Kubeflow's and JobSet's pods are indexed)."""
    from torch.distributed.launcher.api import LaunchConfig

    # SIGTERM is not the agent's to handle: it is a stop request, passed on to the workers
    # (_passing_on_stop_requests). When a worker fails, the agent stops the others with SIGTERM, which
    # they take as a stop request, and then, after STOP_GRACE_S, with SIGKILL.
    common = dict(min_nodes=resources.nnodes, max_nodes=resources.nnodes, nproc_per_node=resources.nproc_per_node,
                  run_id=run_id, max_restarts=0, monitor_interval=0.1, start_method="spawn",
                  signals_to_handle="SIGINT,SIGHUP,SIGQUIT", shutdown_timeout=STOP_GRACE_S)
    if resources.nnodes == 1:
        endpoint = resources.rdzv_endpoint or "localhost:0"
        return LaunchConfig(rdzv_backend="c10d", rdzv_endpoint=endpoint, **common)
    endpoint = resources.resolved_endpoint()
    if endpoint is None:
        raise SpecError("resources.rdzv_endpoint: a job on several machines needs the host:port of node 0",
                        hint="set it in the spec, or MASTER_ADDR and MASTER_PORT in each machine's environment")
    return LaunchConfig(rdzv_backend="static", rdzv_endpoint=endpoint, rdzv_configs={"rank": node_rank},
                        **common)


def check_launchable(spec: Any, *, shared_run_dir: bool = False) -> None:
    """A spec several processes can train: its method runs in several, its checkpoints are shared
    (`shared_run_dir`: the run directory, where checkpoints go by default, is shared storage)."""
    from tunewise.methods import get_method

    if spec.resources.world_size > 1 and not get_method(spec.method.name).multi_process:
        raise SpecError(f"resources: method {spec.method.name} trains in one process",
                        hint="set resources.nproc_per_node and resources.nnodes to 1")
    if not (shared_run_dir and spec.checkpoint.dir is None):
        check_shared_checkpoints(spec)


def check_shared_checkpoints(spec: Any) -> None:
    """Processes on several machines write one checkpoint: its directory must be shared storage."""
    folder = spec.checkpoint.dir
    if spec.resources.nnodes > 1 and (folder is None or ("://" not in folder and not Path(folder).is_absolute())):
        raise SpecError("checkpoint.dir: a job on several machines needs checkpoints on shared storage",
                        hint="an s3:// or gs:// URL, or an absolute path on a filesystem every machine mounts")


def _run_agent(config: Any, run_dir: Path) -> dict[int, Any]:
    """Start the workers and wait; {} on success, else the failures by global rank."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.ERROR)  # the agent's chatter; failures come back as data
    from torch.distributed.elastic.multiprocessing.api import SignalException

    try:
        with _passing_on_stop_requests():
            elastic_launch(config, entrypoint=sys.executable)("-m", "tunewise.scale.worker", str(run_dir))
    except ChildFailedError as err:
        return dict(err.failures)
    except SignalException as err:  # the launcher itself was signalled; the agent has stopped the workers
        if err.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise TrainingProcessFailed(f"the training processes were stopped by {err.sigval.name}",
                                    hint="run the same command again to resume from the last complete checkpoint") from None
    return {}


@contextlib.contextmanager
def _passing_on_stop_requests() -> Iterator[None]:
    """While the workers run, SIGTERM to this process is passed on to them as a stop request."""
    import psutil

    from tunewise.train.stop import request_stop

    def pass_on(signum: int, frame: Any) -> None:
        request_stop()
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if "tunewise.scale.worker" in child.cmdline():
                    child.send_signal(signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, pass_on)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reported_error(handoff: Path, ranks: list[int]) -> TunewiseError | None:
    """The error the first of `ranks` to report one handed back (TrainingStopped for a stop), or None."""
    from tunewise.train.stop import TrainingStopped

    for rank in ranks:
        reported = handoff / f"rank-{rank}.error.json"
        if reported.is_file():
            data = json.loads(reported.read_text())
            if "stopped_at" in data:
                return TrainingStopped(data["stopped_at"])
            error = TunewiseError(data["message"], hint=data.get("hint"))
            error.exit_code = int(data.get("exit_code", 2))
            return error
    return None


def _failure_error(failures: dict[int, Any], handoff: Path, run_dir: Path) -> TunewiseError:
    """The user's error: a worker's own TunewiseError when one reported it (TrainingStopped when
    they stopped on request), else who died and how."""
    reported = reported_error(handoff, sorted(failures))
    if reported is not None:
        return reported
    # The agent records failures in the order it finds them: the first is the cause; the others are
    # the processes it then stopped (SIGTERM, then SIGKILL after STOP_GRACE_S) or that failed because
    # a peer was gone.
    first = next(iter(failures))
    failure = failures[first]
    how = (f"was killed by {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
           else f"exited with code {failure.exitcode}")
    log = "" if first == 0 else f"; its output is in {run_dir / 'logs' / f'rank-{first}.log'}"
    return TrainingProcessFailed(
        f"training process rank {first} (pid {failure.pid}) {how}; the other processes were stopped{log}",
        hint="run the same command again to resume from the last complete checkpoint (on any number of processes)")


@contextlib.contextmanager
def _worker_environment(spec: Any, nproc: int) -> Iterator[None]:
    """Environment the workers inherit: on CPU, the cores split between them (torchrun's default of one
    thread each would leave cores idle when there are fewer processes than cores)."""
    overrides: dict[str, str] = {}
    if spec.train.device != "cuda" and "OMP_NUM_THREADS" not in os.environ:
        overrides["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def following_metrics(path: Path) -> Iterator[None]:
    """Feed the rows rank 0 appends to metrics.jsonl to this process's observers (experiment tracking)."""
    stop = threading.Event()
    thread = threading.Thread(target=_follow, args=(path, stop), name="metrics-follower", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _follow(path: Path, stop: threading.Event) -> None:
    from tunewise.train.metrics_log import notify

    last_step, position = -1, (None, 0)
    while True:
        finished = stop.is_set()  # read once more after the workers are gone, then end
        rows, position = _new_rows(path, position)
        for row in rows:
            if row.get("step", -1) > last_step:  # a resumed run rewrites the file: rows already sent are skipped
                last_step = row["step"]
                notify(path, row)
        if finished:
            return
        stop.wait(0.5)


def _new_rows(path: Path, position: tuple[int | None, int]) -> tuple[list[dict[str, Any]], tuple[int | None, int]]:
    """Complete rows appended since `position` ((inode, byte offset)); a replaced file is read from its start."""
    try:
        with path.open("rb") as fh:
            inode = os.fstat(fh.fileno()).st_ino
            offset = position[1] if inode == position[0] else 0
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return [], position
    complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written has no newline yet
    rows = []
    for line in complete.decode("utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows, (inode, offset + len(complete))
