"""Continuous retraining end to end, every piece real: a monitor's metric crosses a threshold, a job
from the trigger's template trains (local executor, tiny model), passes its evaluation gate, is
registered in MLflow and gets a traffic share through serving's A/B route; chat on the registered
name splits between production and the new version; a second crossing inside the cool-down queues
nothing. Production before the trigger is version 1 of a name the operator registered and promoted
(`tunewise register` / `promote` on the workspace), so the rollout also claims the name for its team."""

from __future__ import annotations

import shutil

import httpx
import openai
import pytest
from sqlalchemy import select

from tests.control_plane_support import LiveServer, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.serving.adapters import make_adapter_run, pass_gate

NAME = "support-bot"
USERS = [f"user-{i}" for i in range(30)]
# Training, evaluation and a gate every tiny run passes (val loss of an untrained tiny model is ~10).
SPEC = {"train": {"max_steps": 2, "micro_batch_size": 4},
        "eval": {"enabled": True, "max_examples": 2, "max_new_tokens": 4, "samples": 0, "spectrum": False,
                 "forgetting": {"enabled": False}, "gate": {"val_loss": "<= 1000"}}}


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir, mlflow_template):
    pytest.importorskip("tunewise.serve.ab", reason="serving (tunewise.serve) is not installed in this build")
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="rollout")
    shutil.copyfile(mlflow_template, home / "mlflow.db")  # the workspace's MLflow registry, migrated
    with LiveServer(app) as server:
        server.app, server.home, server.key = app, home, make_key(app, "team-a")
        yield server


def call(live, method: str, path: str, **kwargs) -> dict:
    response = httpx.request(method, live.url + path, headers={"authorization": f"Bearer {live.key}"},
                             timeout=120, **kwargs)
    assert response.status_code < 400, response.text
    return response.json()


def succeeded(live, job_id: str) -> dict:
    job = wait_for(lambda: (j := call(live, "GET", f"/api/jobs/{job_id}"))["status"] in ("succeeded", "failed")
                   and j, 300, 0.3, f"job {job_id} to finish")
    assert job["status"] == "succeeded", job.get("error")
    return job


def operator_registers_production(live, tiny_model_dir) -> None:
    """Version 1 of NAME, gated and promoted to production by the operator on the server's workspace."""
    from tunewise.jobs.settings import in_workspace
    from tunewise.registry import promote, register_run

    run_dir = make_adapter_run(live.home / "runs", "support-bot-v1", tiny_model_dir, seed=1)
    pass_gate(run_dir, tiny_model_dir)
    with in_workspace(live.home):
        assert str(register_run(run_dir, NAME).version) == "1"
        promote(NAME, "1", "production")


def test_metric_trigger_trains_gates_registers_and_splits_traffic(live, tmp_path, tiny_model_dir):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    file_id = call(live, "POST", "/v1/files", files={"file": ("train.jsonl", data.read_bytes())},
                   data={"purpose": "fine-tune"})["id"]
    template = {"model": "tiny", "spec": {"data": {"train": file_id}, **SPEC}}

    operator_registers_production(live, tiny_model_dir)

    trigger = call(live, "POST", "/api/triggers", json={
        "name": "csat drop", "metric": "support.csat", "threshold": 0.8, "direction": "below",
        "cooldown_seconds": 3600, "template": template, "rollout": {"register_as": NAME, "traffic_percent": 30}})
    assert call(live, "POST", "/api/metrics/support.csat", json={"value": 0.85})["jobs_started"] == []
    [job_id] = call(live, "POST", "/api/metrics/support.csat", json={"value": 0.7})["jobs_started"]
    assert call(live, "POST", "/api/metrics/support.csat", json={"value": 0.5})["jobs_started"] == []  # cooling

    job = succeeded(live, job_id)
    assert job["trigger_id"] == trigger["id"]
    assert call(live, "GET", f"/api/runs/{job_id}")["gate"]["passed"] is True
    rollout = wait_for(lambda: call(live, "GET", f"/api/jobs/{job_id}")["rollout"], 60, 0.3, "the rollout")
    assert rollout["status"] == "registered" and rollout["version"] == "2", rollout
    assert rollout["message"].endswith(f"route {NAME}: {NAME}:1 70%, {NAME}:2 30%"), rollout
    versions = call(live, "GET", f"/api/registry/models/{NAME}")["versions"]  # the team's name now
    assert {v["version"]: v["aliases"] for v in versions} == {"1": ["production"], "2": []}

    check_traffic_split(live)
    # The cool-down held: the crossing after the fire queued no job.
    from tunewise.jobs.store.models import Job

    with live.app.state.ctx.db.session() as session:
        assert list(session.scalars(select(Job.id).where(Job.trigger_id == trigger["id"]))) == [job_id]


def check_traffic_split(live) -> None:
    """Each user lands on the variant the route's hash gives it; both versions answer."""
    from tunewise.serve.ab import Route, Router, Variant

    expected = Router()
    expected.set_route(Route(NAME, (Variant(f"{NAME}:1", 70.0), Variant(f"{NAME}:2", 30.0))))
    api = openai.OpenAI(base_url=live.url + "/v1", api_key=live.key, max_retries=0, _strict_response_validation=True)
    seen = {}
    for user in USERS:
        raw = api.chat.completions.with_raw_response.create(
            model=NAME, user=user, max_tokens=2, temperature=0,
            messages=[{"role": "user", "content": "Item 1: join alpha and beta with number 7."}])
        assert raw.parse().choices[0].message.content is not None
        seen[user] = raw.headers["x-tunewise-variant"]
        assert raw.headers["x-tunewise-model-version"] == seen[user].rsplit(":", 1)[1]
    assert seen == {user: expected.choose(NAME, user).variant.model for user in USERS}
    assert 3 <= list(seen.values()).count(f"{NAME}:2") <= 15  # about 30% of 30, both versions served
