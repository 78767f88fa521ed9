"""The control plane with `executor: ray` on a real two-node Ray cluster (a head with 2 CPUs, a node with 1).

- A job whose gang no node can hold (4 workers on one node) stays queued, its reason in the job's
  queue info and events, while a job that fits starts.
- A two-worker job is paused (the workers checkpoint their step together and stop), resumed from
  that checkpoint, and succeeds at the exact step count, its steps streamed into the job's events.
- Cancelling a running job ends its Ray Train workers.
"""

from __future__ import annotations

import pytest

from tests.control_plane_support import LiveServer, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.control_plane.test_preemption_and_faults import api, messages

ray = pytest.importorskip("ray", reason="the Ray tests need ray[train] (pip install 'tunewise[ray]')")

from tests.ray_support import start_cluster, worker_pids  # noqa: E402

STEPS = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = start_cluster(tmp_path_factory.mktemp("ray"))
    try:
        yield started
    finally:
        if ray.is_initialized():
            ray.shutdown()
        started.stop()


@pytest.fixture(scope="module")
def server(cluster, tmp_path_factory, tiny_model_dir):
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="ray-server",
                             executor={"kind": "ray", "options": {"address": cluster.address, "max_failures": 1}})
    with LiveServer(app) as live:
        live.app, live.home, live.key = app, home, make_key(app, "team-a")
        yield live


def _submit(server, file_id: str, processes: int, steps: int = STEPS) -> str:
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
    assert 2 <= paused["step"] < STEPS
    assert not worker_pids(cluster.address)
    api(server, "POST", f"/v1/fine_tuning/jobs/{job}/resume")
    done = wait_for(lambda: (j := _job(server, job))["status"] in ("succeeded", "failed") and j, timeout=240,
                    what="the resumed job to end")
    events = messages(server, job)
    assert done["status"] == "succeeded", events[-5:]
    assert done["step"] == STEPS and done["attempts"] == 2
    assert [m for m in events if "training loss" in m][-1].startswith(f"Step {STEPS}/{STEPS}: training loss=")
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
