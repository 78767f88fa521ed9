"""The control plane with `executor: ray` on a real two-node Ray cluster started by the tests (a head
with 2 CPUs, a second node with 1); one cluster for the module, ended by its processes' ids.

- A job whose gang no node can hold (4 workers on one node) stays queued with the reason, in its
  queue info and events, while a job that fits starts.
- A two-worker DDP job (one worker on each node, gloo): one worker is SIGKILLed mid-run (its PID
  from Ray's actor table) and Ray Train's restarted worker group resumes from the last complete
  checkpoint; the job is then paused (the workers checkpoint their step together and stop),
  resumed from that step, and succeeds at the exact step count, its steps streamed into the job's
  events. Every step's loss matches one process training the job's spec on the same global batch.
- Cancelling a running job ends its Ray Train workers.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.control_plane_support import LiveServer, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.control_plane.test_preemption_and_faults import api, messages

ray = pytest.importorskip("ray", reason="the Ray tests need ray[train] (pip install 'tunewise[ray]')")

from tests.ray_support import RayCluster, start_cluster, worker_pids  # noqa: E402
from tunewise.spec import load_spec  # noqa: E402
from tunewise.train.metrics_log import MetricsLog  # noqa: E402
from tunewise.train.run import run_training_job  # noqa: E402

STEPS = 20  # room to pause after the restart: a stop request takes a few steps to land
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
def server(cluster, tmp_path_factory, tiny_model_dir):
    # One worker on each node for jobs across nodes (STRICT_SPREAD); one restart within an attempt.
    options = {"address": cluster.address, "max_failures": 1, "multi_node_strategy": "STRICT_SPREAD"}
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="ray-server",
                             executor={"kind": "ray", "options": options})
    with LiveServer(app) as live:
        live.app, live.home, live.key = app, home, make_key(app, "team-a")
        yield live


@pytest.fixture(scope="module")
def file_id(server, tmp_path_factory) -> str:
    data = write_chat_dataset(tmp_path_factory.mktemp("ray-data") / "train.jsonl", rows=48)
    with data.open("rb") as fh:
        return api(server, "POST", "/v1/files", files={"file": ("train.jsonl", fh)},
                   data={"purpose": "fine-tune"})["id"]


def _submit(server, file_id: str, *, nproc: int = 1, nnodes: int = 1, steps: int = STEPS) -> str:
    # 2 sequences a micro-batch, one per worker: the global batch of 2 workers is one process's 2 x 2.
    spec = {"method": "lora", "data": {"train": file_id, "max_length": 128},
            "train": {"max_steps": steps, "device": "cpu", "micro_batch_size": 2, "gradient_accumulation": 1,
                      "learning_rate": 1e-3, "precision": "fp32"},
            "checkpoint": {"every_steps": 2, "keep_last": 2, "keep_best": 0},
            "eval": {"enabled": False},  # evaluation has its own tests; here it would double the job's time
            "resources": {"nproc_per_node": nproc, "nnodes": nnodes, "collective_timeout_s": 120}}
    return api(server, "POST", "/api/jobs", json={"model": "tiny", "spec": spec})["id"]


def _job(server, job_id: str) -> dict:
    return api(server, "GET", f"/api/jobs/{job_id}")


def _step(server, job_id: str) -> int:
    return _job(server, job_id)["step"] or 0


def test_a_ddp_job_survives_a_killed_worker_pauses_resumes_and_matches_one_process(server, cluster, file_id,
                                                                                  tmp_path):
    too_big = _submit(server, file_id, nproc=4)
    job = _submit(server, file_id, nnodes=2)

    # The gang of 4 never fits a node of 2 CPUs: it waits with the reason; the job of 2 starts.
    wait_for(lambda: _job(server, too_big)["queue"]["reason"] == "capacity", timeout=60, what="the capacity reason")
    detail = _job(server, too_big)["queue"]["detail"]
    assert "needs 4 workers x 1 CPU on one node" in detail and "holds 2" in detail, detail
    assert any(m.startswith("Waiting: the Ray cluster") for m in messages(server, too_big))

    # SIGKILL a worker once step 3 is trained (a checkpoint at step 2 exists): the attempt goes on.
    wait_for(lambda: _step(server, job) >= 3 and len(worker_pids(cluster.address)) == 2, timeout=240,
             what="step 3 on two workers")
    killed = worker_pids(cluster.address)[-1]
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: len(pids := worker_pids(cluster.address)) == 2 and killed not in pids, timeout=120,
             what="a new worker group")

    # Pause once the new group trains past the kill: the workers checkpoint together and stop.
    at_kill = _step(server, job)
    wait_for(lambda: _step(server, job) > at_kill, timeout=120, what="steps after the restart")
    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/pause")
    paused = wait_for(lambda: (j := _job(server, job))["status"] in ("paused", "succeeded") and j, timeout=120,
                      what="paused")
    assert paused["status"] == "paused", "the job ended before it could be paused"
    wait_for(lambda: not worker_pids(cluster.address), timeout=30, what="the paused job's workers to end")

    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/resume")
    done = wait_for(lambda: (j := _job(server, job))["status"] in ("succeeded", "failed") and j, timeout=240,
                    what="the resumed job to end")
    events = messages(server, job)
    assert done["status"] == "succeeded", events[-5:]
    assert done["step"] == STEPS and done["attempts"] == 2 and done["failures"] == 0  # Ray restarted the group
    assert [m for m in events if "training loss" in m][-1].startswith(f"Step {STEPS}/{STEPS}: training loss=")
    assert any(f"from step {paused['step']}" in m for m in events)
    # The job's log: the driver's output, with the workers' forwarded into it by Ray.
    log = httpx.get(f"{server.url}/api/jobs/{job}/logs", headers={"authorization": f"Bearer {server.key}"},
                    timeout=60).text
    assert "RayTrainWorker" in log and re.search(r"resuming\S* from checkpoint at step", log)
    _assert_matches_one_process(server, job, tmp_path)

    assert _job(server, too_big)["status"] == "queued"  # still waiting for a node of 4 CPUs
    api(server, "POST", f"/v1/fine_tuning/jobs/{too_big}/cancel")


def test_cancel_ends_the_ray_workers(server, cluster, file_id):
    job = _submit(server, file_id, steps=200)
    wait_for(lambda: _step(server, job) >= 1 and worker_pids(cluster.address), timeout=240, what="training on Ray")
    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/cancel")
    assert _job(server, job)["status"] == "cancelled"
    wait_for(lambda: not worker_pids(cluster.address), timeout=60, what="the workers to end")
    time.sleep(1)
    assert _job(server, job)["status"] == "cancelled"


def _assert_matches_one_process(server, job_id: str, tmp_path: Path) -> None:
    """One process trains the job's own spec on the same global batch (2 x 2 sequences a step)."""
    from tunewise.jobs.store.models import Job

    with server.app.state.ctx.db.session() as session:
        raw = dict(session.scalar(select(Job).where(Job.id == job_id)).spec)
    raw.update(name="one-process", resources={"nproc_per_node": 1, "nnodes": 1})
    raw["train"] = {**raw["train"], "gradient_accumulation": 2}
    previous = os.environ.get("TUNEWISE_HOME")
    os.environ["TUNEWISE_HOME"] = str(tmp_path / "home")
    try:
        reference = run_training_job(load_spec(raw=raw))
    finally:
        if previous is None:
            os.environ.pop("TUNEWISE_HOME", None)
        else:
            os.environ["TUNEWISE_HOME"] = previous
    want = MetricsLog(reference.run_dir / "metrics.jsonl").read()
    got = MetricsLog(server.home / "runs" / job_id / "metrics.jsonl").read()
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    for mine, theirs in zip(got, want):
        for key in ("train_loss", "val_loss", "grad_norm"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["step"], key)
