"""Webhooks (signed as OpenAI signs them, retried) and retraining triggers (metric threshold with a
cool-down, cron) on a real server with no free slot (nothing trains)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import openai
import pytest
from sqlalchemy import select, update

from tests.control_plane_support import LiveServer, blocked_pool, free_port, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server

SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLXR1bmV3aXNlLXdlYmhvb2tz"


class Receiver:
    """An HTTP endpoint that records deliveries and fails the first one with a 500."""

    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.calls += 1
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.calls == 1:
                    self.send_response(500)
                else:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.http = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    receiver = Receiver()
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEWISE_WEBHOOK_SECRET", SECRET)
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="hooks", scheduling=blocked_pool(),
                             webhooks={"url": f"http://127.0.0.1:{receiver.port}/hook", "backoff_seconds": 0.2})
    with LiveServer(app) as live:
        live.app, live.key = app, make_key(app, "team-a")
        yield live, receiver
    receiver.http.shutdown()
    mp.undo()


def call(live, method, path, **kwargs):
    response = httpx.request(method, live.url + path, headers={"authorization": f"Bearer {live.key}"}, timeout=60,
                             **kwargs)
    assert response.status_code < 400, response.text
    return response.json()


def upload(live, tmp_path) -> str:
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=12)
    return call(live, "POST", "/v1/files", files={"file": ("train.jsonl", data.read_bytes())},
                data={"purpose": "fine-tune"})["id"]


def test_cancelled_job_webhook_is_signed_and_retried(setup, tmp_path):
    live, receiver = setup
    job = call(live, "POST", "/v1/fine_tuning/jobs", json={"model": "tiny", "training_file": upload(live, tmp_path)})
    call(live, "POST", f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    headers, body = wait_for(lambda: receiver.received and receiver.received[0], 60, 0.1, "a delivery")
    assert receiver.calls == 2  # the first attempt got a 500 and was retried
    event = openai.OpenAI(api_key="unused").webhooks.unwrap(body, headers, secret=SECRET)
    assert event.type == "fine_tuning.job.cancelled" and event.data.id == job["id"]
    with pytest.raises(openai.InvalidWebhookSignatureError):
        openai.OpenAI(api_key="unused").webhooks.unwrap(body + b" ", headers, secret=SECRET)
    assert json.loads(body)["data"]["status"] == "cancelled"


def test_metric_trigger_fires_once_per_cooldown_and_cron_fires_when_due(setup, tmp_path):
    live, _ = setup
    file_id = upload(live, tmp_path)
    template = {"model": "tiny", "spec": {"data": {"train": file_id}, "train": {"max_steps": 2}}, "priority": "low"}
    trigger = call(live, "POST", "/api/triggers", json={"name": "accuracy drop", "metric": "support.accuracy",
                                                        "threshold": 0.8, "direction": "below",
                                                        "cooldown_seconds": 3600, "template": template})
    assert call(live, "POST", "/api/metrics/support.accuracy", json={"value": 0.9})["jobs_started"] == []
    fired = call(live, "POST", "/api/metrics/support.accuracy", json={"value": 0.7})["jobs_started"]
    assert len(fired) == 1
    assert call(live, "POST", "/api/metrics/support.accuracy", json={"value": 0.6})["jobs_started"] == []  # cooling
    job = call(live, "GET", f"/api/jobs/{fired[0]}")
    assert job["trigger_id"] == trigger["id"] and job["priority"] == "low" and job["source"] == "trigger"
    assert call(live, "GET", f"/api/triggers/{trigger['id']}")["last_value"] == 0.6

    nightly = call(live, "POST", "/api/triggers", json={"name": "nightly", "cron": "0 3 * * *", "template": template})
    assert nightly["next_run_at"] > time.time()
    from tunewise.jobs.store.models import Job, Trigger

    db = live.app.state.ctx.db
    with db.session() as session:  # pretend 3 a.m. has come
        session.execute(update(Trigger).where(Trigger.id == nightly["id"]).values(next_run_at=time.time() - 1))
    wait_for(lambda: _jobs_of(db, Job, nightly["id"]), 30, 0.2, "the cron trigger to fire")
    assert call(live, "GET", f"/api/triggers/{nightly['id']}")["next_run_at"] > time.time()

    with pytest.raises(AssertionError, match="cron schedule"):
        call(live, "POST", "/api/triggers", json={"name": "bad", "cron": "every day", "template": template})
    with pytest.raises(AssertionError, match="scoring functions are code"):
        call(live, "POST", "/api/triggers", json={"name": "bad", "cron": "0 3 * * *", "template": {
            "model": "tiny", "spec": {"data": {"train": file_id}, "method": {"name": "grpo",
                                                                            "reward_functions": ["os:system"]}}}})


def _jobs_of(db, Job, trigger_id):
    with db.session() as session:
        return list(session.scalars(select(Job.id).where(Job.trigger_id == trigger_id)))
