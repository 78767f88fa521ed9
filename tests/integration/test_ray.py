"""Tunewise on a real two-node Ray cluster started by the tests (a head with 2 CPUs, a node with 1);
one cluster for the module, ended by its processes' ids at teardown.

Through the control plane (`executor: ray`):
- a job whose gang no node can hold (4 workers on one node) stays queued, its reason in the job's
  queue info and events, while a job that fits starts;
- a two-worker job is paused (the workers checkpoint their step together and stop), resumed from
  that checkpoint, and succeeds at the exact step count, its steps streamed into the job's events;
- cancelling a running job ends its Ray Train workers.
Through `tunewise train` as the executor starts it: two workers on two nodes (DDP over gloo) train
each step's loss as one process does on the same global batch, even though one worker is SIGKILLed
mid-run (its PID from Ray's actor table): Ray Train restarts the worker group, which resumes from
the last complete checkpoint, and the run ends at the exact step count.
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

from tests.control_plane_support import LiveServer, make_key, wait_for
from tests.helpers import tiny_spec, write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.control_plane.test_preemption_and_faults import api, messages

ray = pytest.importorskip("ray", reason="the Ray tests need ray[train] (pip install 'tunewise[ray]')")

from tests.ray_support import RayCluster, start_cluster, worker_pids  # noqa: E402
from tunewise.scale.ray_cluster import RayOptions  # noqa: E402
from tunewise.spec import load_spec  # noqa: E402
from tunewise.train.metrics_log import MetricsLog  # noqa: E402
from tunewise.train.run import read_status, run_training_job  # noqa: E402

STEPS = 8
SERVER_STEPS = 6
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


@pytest.fixture(scope="module")
def server(cluster, tmp_path_factory, tiny_model_dir):
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="ray-server",
                             executor={"kind": "ray", "options": {"address": cluster.address, "max_failures": 1}})
    with LiveServer(app) as live:
        live.app, live.home, live.key = app, home, make_key(app, "team-a")
        yield live


def _submit(server, file_id: str, processes: int, steps: int = SERVER_STEPS) -> str:
    spec = {"method": "lora", "data": {"train": file_id},
            "train": {"max_steps": steps, "device": "cpu", "micro_batch_size": 2, "gradient_accumulation": 1},
            "checkpoint": {"every_steps": 2, "keep_last": 2, "keep_best": 0},
            "resources": {"nproc_per_node": processes, "collective_timeout_s": 120}}
    return api(server, "POST", "/api/jobs", json={"model": "tiny", "spec": spec})["id"]


def _job(server, job_id: str) -> dict:
    return api(server, "GET", f"/api/jobs/{job_id}")


def test_jobs_on_ray_queue_pause_resume_and_cancel(server, cluster, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=32)
    with data.open("rb") as fh:
        file_id = api(server, "POST", "/v1/files", files={"file": ("train.jsonl", fh)},
                      data={"purpose": "fine-tune"})["id"]
    too_big = _submit(server, file_id, processes=4)
    job = _submit(server, file_id, processes=2)

    # The gang of 4 never fits a node of 2 CPUs: it waits with the reason; the job of 2 starts.
    wait_for(lambda: _job(server, too_big)["queue"]["reason"] == "capacity", timeout=60, what="the capacity reason")
    detail = _job(server, too_big)["queue"]["detail"]
    assert "needs 4 workers x 1 CPU on one node" in detail and "holds 2" in detail, detail
    assert any(m.startswith("Waiting: the Ray cluster") for m in messages(server, too_big))

    # Pause once a step is trained: the workers checkpoint together and stop; resume continues from there.
    wait_for(lambda: (_job(server, job)["step"] or 0) >= 2, timeout=180, what="step 2 on Ray")
    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/pause")
    paused = wait_for(lambda: (j := _job(server, job))["status"] == "paused" and j, timeout=120, what="paused")
    assert 2 <= paused["step"] < SERVER_STEPS
    wait_for(lambda: not worker_pids(cluster.address), timeout=30, what="the paused job's workers to end")
    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/resume")
    done = wait_for(lambda: (j := _job(server, job))["status"] in ("succeeded", "failed") and j, timeout=240,
                    what="the resumed job to end")
    events = messages(server, job)
    assert done["status"] == "succeeded", events[-5:]
    assert done["step"] == SERVER_STEPS and done["attempts"] == 2
    assert [m for m in events if "training loss" in m][-1].startswith(f"Step {SERVER_STEPS}/{SERVER_STEPS}: training loss=")
    assert any(f"from step {paused['step']}" in m for m in events)
    assert _job(server, too_big)["status"] == "queued"  # still waiting for a node of 4 CPUs

    # Cancel a running job: its Ray Train workers end.
    api(server, "POST", f"/v1/fine_tuning/jobs/{too_big}/cancel")
    running = _submit(server, file_id, processes=2, steps=40)
    wait_for(lambda: (_job(server, running)["step"] or 0) >= 1 and len(worker_pids(cluster.address)) == 2,
             timeout=180, what="the job to train on two workers")
    api(server, "POST", f"/v1/fine_tuning/jobs/{running}/cancel")
    assert _job(server, running)["status"] == "cancelled"
    wait_for(lambda: not worker_pids(cluster.address), timeout=60, what="the workers to end")


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


def test_two_workers_train_as_one_process_does_even_when_one_is_killed(cluster, reference, tiny_model_dir, tmp_path,
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
