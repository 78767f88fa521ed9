"""Preemption and crashes on a real server with one CPU slot and real training processes.

A low-priority job is preempted by a high-priority one: it writes a checkpoint, stops, is
requeued, and resumes at the exact step it stopped at once the slot frees. Then its training
process is killed with SIGKILL: the job is retried from its last checkpoint and finishes.
"""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
from sqlalchemy import select

from tests.control_plane_support import LiveServer, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.control_plane.test_openai_client import metrics_step

STEPS = 12


class StreamReader:
    """Reads a job's server-sent events on a thread, as the portal does."""

    def __init__(self, server, job_id: str):
        import threading

        self.events: list[tuple[str, dict]] = []
        self.thread = threading.Thread(target=self._read, args=(server, job_id), daemon=True)
        self.thread.start()

    def _read(self, server, job_id: str) -> None:
        kind = None
        with httpx.stream("GET", f"{server.url}/api/jobs/{job_id}/stream", timeout=600,
                          headers={"authorization": f"Bearer {server.key}"}) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, json.loads(line[6:])))


def check_live_stream(stream: StreamReader) -> None:
    stream.thread.join(timeout=60)
    kinds = [kind for kind, _ in stream.events]
    statuses = [data["status"] for kind, data in stream.events if kind == "status"]
    assert statuses[0] in ("validating_files", "queued") and statuses[-1] == "succeeded" and "running" in statuses
    assert [data["data"]["step"] for kind, data in stream.events if kind == "metrics"] == [1, 2]
    assert kinds[-1] == "done"


def check_registry_over_http(server, job_id: str) -> None:
    """Register the succeeded job, promote it to staging; production needs a passed gate (there is none)."""
    version = api(server, "POST", "/api/registry/models", json={"name": "support-bot", "job_id": job_id})
    assert version["version"] == "1" and version["run"] == job_id
    event = api(server, "POST", "/api/registry/models/support-bot/promote", json={"version": "1", "to": "staging"})
    assert event["alias"] == "staging"
    refused = httpx.post(f"{server.url}/api/registry/models/support-bot/promote", json={"version": "1",
                         "to": "production"}, headers={"authorization": f"Bearer {server.key}"}, timeout=60)
    assert refused.status_code == 400 and "production needs one" in refused.json()["error"]["message"]
    model = api(server, "GET", "/api/registry/models/support-bot")
    assert model["versions"][0]["aliases"] == ["staging"]
    assert [m["name"] for m in api(server, "GET", "/api/registry/models")["data"]] == ["support-bot"]
    run = api(server, "GET", f"/api/runs/{job_id}")
    assert run["status"]["state"] == "completed" and run["data_report"]["rows_kept"] == 32


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="faults")
    with LiveServer(app) as live:
        live.app, live.home, live.key = app, home, make_key(app, "team-a")
        yield live


def api(server, method: str, path: str, **kwargs):
    response = httpx.request(method, server.url + path, headers={"authorization": f"Bearer {server.key}"},
                             timeout=60, **kwargs)
    assert response.status_code < 400, response.text
    return response.json()


def submit(server, file_id: str, steps: int, priority: str) -> str:
    spec = {"method": "lora", "data": {"train": file_id}, "train": {"max_steps": steps, "device": "cpu"},
            "checkpoint": {"every_steps": 2, "keep_last": 2, "keep_best": 0},
            "eval": {"enabled": False}}  # evaluation and its gate are the trigger test's
    return api(server, "POST", "/api/jobs", json={"model": "tiny", "spec": spec, "priority": priority})["id"]


def messages(server, job_id: str) -> list[str]:
    events = api(server, "GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000})["data"]
    return [e["message"] for e in reversed(events)]


def training_pid(server, job_id: str) -> int:
    from tunewise.jobs.store.models import Job

    with server.app.state.ctx.db.session() as session:
        return session.scalar(select(Job).where(Job.id == job_id)).handle["pid"]


def test_preempted_job_resumes_at_its_step_and_survives_sigkill(server, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=32)
    with data.open("rb") as fh:
        file_id = api(server, "POST", "/v1/files", files={"file": ("train.jsonl", fh)},
                      data={"purpose": "fine-tune"})["id"]
    low = submit(server, file_id, STEPS, "low")
    low_run = server.home / "runs" / low
    wait_for(lambda: metrics_step(low_run) >= 2, 600, 0.05, "the low-priority job to train")

    high = submit(server, file_id, 2, "high")
    stream = StreamReader(server, high)
    requeued = wait_for(lambda: any(m.startswith("Job stopped at step") for m in messages(server, low)), 300, 0.2,
                        "the low-priority job to stop")
    assert requeued
    stopped_at = api(server, "GET", f"/api/jobs/{low}")["step"]
    assert 2 <= stopped_at < STEPS
    assert any(m.startswith("Preempted (") for m in messages(server, low))
    assert json.loads((low_run / "status.json").read_text())["state"] == "stopped"

    wait_for(lambda: api(server, "GET", f"/api/jobs/{high}")["status"] == "succeeded", 600, 0.5, "the high job")
    check_live_stream(stream)
    check_registry_over_http(server, high)
    wait_for(lambda: metrics_step(low_run) >= stopped_at + 2, 600, 0.05, "the low job to train again")
    assert f"Fine-tuning job resumed on local: 1 CPU slot from step {stopped_at}" in messages(server, low)
    log = (server.home / "jobs" / low / "train.log").read_text()
    assert f"resuming from checkpoint at step {stopped_at} of {STEPS}" in log

    os.kill(training_pid(server, low), signal.SIGKILL)
    done = wait_for(lambda: (j := api(server, "GET", f"/api/jobs/{low}"))["status"] in ("succeeded", "failed") and j,
                    600, 0.5, "the low job to finish after the crash")
    assert done["status"] == "succeeded", done["error"]
    assert done["failures"] == 1 and done["attempts"] == 3
    assert any("ended unexpectedly (signal 9); retrying from the last checkpoint" in m for m in messages(server, low))
    steps = [json.loads(line)["step"] for line in (low_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # every step once: each resume continued where the checkpoint was
