"""The server process killed with SIGKILL and started again on the same workspace: nothing is lost.

A running job's training process outlives the server and is followed by the next one; a queued job
stays queued and starts when a cancel frees the slot. (A job whose process died while no server
ran is retried from its checkpoint: tests/unit/jobs/test_lifecycle.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from tests.control_plane_support import free_port, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import server_config
from tests.integration.control_plane.test_openai_client import metrics_step

REPO = Path(__file__).resolve().parents[3]


class ServerProcess:
    """`tunewise server --config` as its own process, killed with SIGKILL by the test."""

    def __init__(self, home: Path, model_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = home.parent / f"server-{self.port}.yaml"
        config.write_text(yaml.safe_dump({**server_config(home, model_dir), "port": self.port}))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.log = home.parent / f"server-{self.port}.log"
        with self.log.open("wb") as log:  # a file, not a pipe: nobody reads it while the server runs
            self.proc = subprocess.Popen([sys.executable, "-m", "tunewise", "server", "--config", str(config)],
                                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 120, 0.2, "the server process to answer")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture()
def servers(tmp_path, tiny_model_dir):
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        started.append(ServerProcess(tmp_path / "home", tiny_model_dir))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()


def test_killed_server_loses_nothing(servers, tmp_path):
    first = servers()
    assert "admin key (shown once" in first.log.read_text()  # the first start made an admin key
    from tunewise.jobs.store.db import Database
    from tunewise.jobs.store.models import Job

    home = tmp_path / "home"
    db = Database(f"sqlite:///{home / 'tunewise.db'}")
    headers = {"authorization": f"Bearer {make_key(db, 'team-a')}"}

    def call(server, method, path, **kwargs):
        response = httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)
        assert response.status_code < 400, response.text
        return response.json()

    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    with data.open("rb") as fh:
        file_id = call(first, "POST", "/v1/files", files={"file": ("train.jsonl", fh)}, data={"purpose": "fine-tune"})["id"]

    def submit(server, steps):
        spec = {"method": "lora", "data": {"train": file_id}, "train": {"max_steps": steps, "device": "cpu"},
                "checkpoint": {"every_steps": 2, "keep_last": 2, "keep_best": 0}, "eval": {"enabled": False}}
        return call(server, "POST", "/api/jobs", json={"model": "tiny", "spec": spec})["id"]

    running, queued = submit(first, 10_000), submit(first, 2)
    run_dir = home / "runs" / running
    wait_for(lambda: metrics_step(run_dir) >= 2, 600, 0.05, "the first job to train")
    wait_for(lambda: call(first, "GET", f"/api/jobs/{queued}")["queue"]["position"] == 1, 120, what="a queue place")

    def pid() -> int:
        with db.session() as session:
            return session.scalar(select(Job).where(Job.id == running)).handle["pid"]

    training = pid()
    first.kill()  # the server dies; its training process does not
    step_at_kill = metrics_step(run_dir)

    second = servers()
    wait_for(lambda: metrics_step(run_dir) > step_at_kill + 1, 600, 0.1, "training to go on under the new server")
    job = call(second, "GET", f"/api/jobs/{running}")
    assert job["status"] == "running" and job["attempts"] == 1 and pid() == training  # followed, not restarted
    assert call(second, "GET", f"/api/jobs/{queued}")["status"] == "queued"
    events = [e["message"] for e in call(second, "GET", f"/v1/fine_tuning/jobs/{running}/events",
                                         params={"limit": 1000})["data"]]
    assert any(m.startswith(f"Step {step_at_kill + 1}/") for m in events)  # progress kept flowing into events

    cancelled = call(second, "POST", f"/v1/fine_tuning/jobs/{running}/cancel")
    assert cancelled["status"] == "cancelled"  # at once, and the slot is free for the queued job
    wait_for(lambda: call(second, "GET", f"/api/jobs/{queued}")["status"] != "queued", 120, 0.2,
             "the queued job to start")
    assert call(second, "GET", f"/api/jobs/{queued}")["status"] in ("running", "succeeded")
    db.close()
