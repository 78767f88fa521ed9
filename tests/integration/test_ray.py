"""Training on a real two-node Ray cluster started by the tests (a head with 2 CPUs, a node with 1).

- Two Ray Train workers (DDP over gloo) train each step's loss as one process does on the same
  global batch.
- A worker SIGKILLed mid-run (its PID from Ray's actor table): Ray Train restarts the worker group,
  which resumes from the last complete checkpoint, and the run ends at the exact step count with
  the one-process losses.
The control plane's side (queueing, pause, cancel) is in control_plane/test_ray_executor.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import tiny_spec, write_chat_dataset

ray = pytest.importorskip("ray", reason="the Ray tests need ray[train] (pip install 'tunewise[ray]')")

from tests.ray_support import RayCluster, start_cluster, worker_pids  # noqa: E402
from tunewise.scale.ray_cluster import RayOptions  # noqa: E402
from tunewise.spec import load_spec  # noqa: E402
from tunewise.train.metrics_log import MetricsLog  # noqa: E402
from tunewise.train.run import read_status, run_training_job  # noqa: E402

STEPS = 8
TOLERANCE = 2e-4  # the same sums in another order: float32 rounding


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> RayCluster:
    started = start_cluster(tmp_path_factory.mktemp("ray"))
    try:
        yield started
    finally:
        if ray.is_initialized():
            ray.shutdown()
        started.stop()


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The data and one process's metrics on the global batch every Ray run trains on (2 x 2 sequences)."""
    folder = tmp_path_factory.mktemp("ray-reference")
    data = write_chat_dataset(folder / "train.jsonl", rows=48)
    previous = os.environ.get("TUNEWISE_HOME")
    os.environ["TUNEWISE_HOME"] = str(folder / "home")
    try:
        result = run_training_job(load_spec(raw=_raw(tiny_model_dir, data, "one", nproc=1, nnodes=1)))
    finally:
        if previous is None:
            os.environ.pop("TUNEWISE_HOME", None)
        else:
            os.environ["TUNEWISE_HOME"] = previous
    return data, MetricsLog(result.run_dir / "metrics.jsonl").read()


def _raw(model_dir: Path, data: Path, name: str, *, nproc: int, nnodes: int) -> dict:
    processes = nproc * nnodes
    raw = tiny_spec(model_dir, data, "lora", max_steps=STEPS, micro_batch_size=2,
                    gradient_accumulation=2 // processes, learning_rate=1e-3)
    raw["name"] = name
    raw["checkpoint"] = {"every_steps": 2, "keep_best": 1, "keep_last": 2}
    raw["resources"] = {"nproc_per_node": nproc, "nnodes": nnodes, "collective_timeout_s": 120}
    return raw


def _train_on_ray(tmp_path: Path, raw: dict, options: RayOptions) -> subprocess.Popen:
    """`tunewise train` as the Ray executor starts it: the driver of a Ray Train run."""
    spec = tmp_path / f"{raw['name']}.yaml"
    spec.write_text(yaml.safe_dump(raw))
    env = {**os.environ, **options.to_env(), "TUNEWISE_ALLOCATOR": "system"}
    return subprocess.Popen([sys.executable, "-m", "tunewise", "train", str(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _assert_same_losses(got: list[dict], want: list[dict]) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    for mine, theirs in zip(got, want):
        for key in ("train_loss", "val_loss", "grad_norm"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["step"], key)


def test_two_ray_workers_train_as_one_process_does(cluster, reference, tiny_model_dir, tmp_path, workspace):
    data, want = reference
    proc = _train_on_ray(tmp_path, _raw(tiny_model_dir, data, "ray-two", nproc=2, nnodes=1),
                         RayOptions(address=cluster.address))
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-4000:]
    run_dir = workspace / "runs" / "ray-two"
    assert read_status(run_dir)["state"] == "completed"
    assert "2 worker(s), STRICT_PACK" in out
    _assert_same_losses(MetricsLog(run_dir / "metrics.jsonl").read(), want)
    assert (run_dir / "artifact" / "adapter_model.safetensors").is_file()
    assert not worker_pids(cluster.address)  # the workers ended with the run


def test_a_killed_worker_is_recovered_from_the_last_checkpoint(cluster, reference, tiny_model_dir, tmp_path,
                                                                workspace):
    data, want = reference
    raw = _raw(tiny_model_dir, data, "ray-kill", nproc=1, nnodes=2)  # one worker on each node
    raw["checkpoint"]["dir"] = str(tmp_path / "checkpoints")  # several nodes: shared storage (an absolute path)
    proc = _train_on_ray(tmp_path, raw, RayOptions(address=cluster.address, multi_node_strategy="STRICT_SPREAD",
                                                   max_failures=1))
    run_dir = workspace / "runs" / "ray-kill"
    killed = _kill_a_worker_after(run_dir, proc, cluster, step=3)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["step"] == STEPS
    assert killed not in worker_pids(cluster.address)
    resumed = re.search(r"resuming\S* from checkpoint at step (\d+)", out)  # rank 0's line, forwarded by Ray
    assert resumed and 2 <= int(resumed.group(1)) < STEPS, out[-4000:]
    _assert_same_losses(MetricsLog(run_dir / "metrics.jsonl").read(), want)  # rows past the checkpoint redone


def _kill_a_worker_after(run_dir: Path, proc: subprocess.Popen, cluster: RayCluster, *, step: int) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        rows = MetricsLog(run_dir / "metrics.jsonl").read() if (run_dir / "metrics.jsonl").is_file() else []
        pids = worker_pids(cluster.address)
        if rows and rows[-1]["step"] >= step and len(pids) == 2:
            assert rows[-1]["step"] < STEPS, "the run ended before a worker could be killed"
            os.kill(pids[-1], signal.SIGKILL)
            return pids[-1]
        time.sleep(0.1)
    raise AssertionError(f"the run never reached step {step}")
