"""Security: every route refuses another team's objects (the test walks the whole route table), keys
are stored hashed, and oversized or malformed uploads are refused with OpenAI-style errors."""

from __future__ import annotations


import json
import re
import time

import httpx
import pytest
from sqlalchemy import select

from tests.control_plane_support import LiveServer, blocked_pool, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server

PUBLIC = {("GET", "/health")}
ADMIN_ONLY = {("POST", "/api/keys"), ("GET", "/api/keys"), ("DELETE", "/api/keys/{key_id}"),
              ("GET", "/metrics"),  # serving's Prometheus labels name every team's models
              ("GET", "/api/ops"), ("GET", "/api/serving")}  # the operator's views of every team
OWN_CREATIONS = {("POST", "/v1/files"), ("POST", "/v1/uploads"),  # make or end the caller's own objects only
                 ("POST", "/api/session"), ("DELETE", "/api/session")}
ABOUT_THE_BODY = {("POST", "/api/specs/yaml"), ("POST", "/api/specs/parse")}  # convert what is sent, read nothing


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="security", scheduling=blocked_pool(),
                             limits={"max_file_bytes": 64_000, "max_part_bytes": 2_000, "max_request_bytes": 32_000,
                                     "max_upload_bytes": 100_000})
    with LiveServer(app) as live:
        live.app, live.home = app, home
        live.keys = {"a": make_key(app, "team-a"), "b": make_key(app, "team-b")}
        yield live


def call(server, who, method, path, *, headers=None, **kwargs) -> httpx.Response:
    headers = {**({"authorization": f"Bearer {server.keys[who]}"} if who else {}), **(headers or {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def team_a(server, tmp_path_factory):
    """Objects of team a: a file, an upload with a part, a queued job, a trigger, a registered name."""
    from tunewise.jobs.store.models import RegisteredModel

    data = write_chat_dataset(tmp_path_factory.mktemp("a") / "train.jsonl", rows=12)
    file_id = call(server, "a", "POST", "/v1/files", files={"file": ("train.jsonl", data.read_bytes())},
                   data={"purpose": "fine-tune"}).json()["id"]
    upload = call(server, "a", "POST", "/v1/uploads", json={"bytes": 10, "filename": "big.jsonl",
                                                            "mime_type": "text/jsonl", "purpose": "fine-tune"}).json()
    part = call(server, "a", "POST", f"/v1/uploads/{upload['id']}/parts", files={"data": ("p", b"{}\n")}).json()
    job = call(server, "a", "POST", "/v1/fine_tuning/jobs", json={"model": "tiny", "training_file": file_id}).json()
    trigger = call(server, "a", "POST", "/api/triggers", json={
        "name": "nightly", "cron": "0 3 1 1 *", "metric": "accuracy", "threshold": 0.5,
        "template": {"model": "tiny", "spec": {"data": {"train": file_id}}}}).json()
    with server.app.state.ctx.db.session() as session:
        session.add(RegisteredModel(name="team-a-model", team="team-a", created_at=time.time()))
    wait_for(lambda: call(server, "a", "GET", f"/api/jobs/{job['id']}").json()["status"] == "queued", 120,
             what="team a's job to queue")
    return {"file_id": file_id, "upload_id": upload["id"], "part_id": part["id"], "fine_tuning_job_id": job["id"],
            "job_id": job["id"], "trigger_id": trigger["id"], "name": "team-a-model", "key_id": "key_x", "step": "2",
            "model_id": f"ft:tiny:team-a::{job['id'][-8:]}"}


def _bodies(objects):
    spec = {"model": "tiny", "spec": {"data": {"train": objects["file_id"]}}}
    return {
        ("POST", "/v1/fine_tuning/jobs"): {"json": {"model": "tiny", "training_file": objects["file_id"]}},
        ("POST", "/api/jobs"): {"json": spec},
        ("POST", "/api/jobs/dry-run"): {"json": spec},
        ("POST", "/api/triggers"): {"json": {"name": "steal", "cron": "0 3 1 1 *", "template": spec}},
        ("POST", "/api/registry/models"): {"json": {"name": "team-a-model", "job_id": objects["job_id"]}},
        ("POST", "/api/registry/models/{name}/promote"): {"json": {"version": "1", "to": "staging"}},
        ("POST", "/v1/uploads/{upload_id}/complete"): {"json": {"part_ids": [objects["part_id"]]}},
        ("POST", "/v1/uploads/{upload_id}/parts"): {"files": {"data": ("p", b"{}\n")}},
        ("PATCH", "/api/jobs/{job_id}"): {"json": {"priority": "high"}},
        ("POST", "/api/metrics/{name}"): {"json": {"value": 0.1}},
        ("POST", "/api/keys"): {"json": {"team": "team-b"}},
        # Serving's routes, where it is mounted: team a's model names are unknown to team b.
        ("POST", "/v1/chat/completions"): {"json": {"model": objects["model_id"], "max_tokens": 2,
                                                    "messages": [{"role": "user", "content": "hi"}]}},
        ("POST", "/v1/completions"): {"json": {"model": objects["model_id"], "prompt": "hi", "max_tokens": 2}},
        ("POST", "/v1/feedback"): {"json": {"response_id": "chatcmpl-unknown", "score": 1}},
        # The portal's planning and run routes name team a's files and jobs.
        ("POST", "/api/plan"): {"json": {"model": "tiny", "training_file": objects["file_id"]}},
        ("POST", "/api/diagnose"): {"json": {"questions_file": objects["file_id"], "docs_file": objects["file_id"]}},
        ("POST", "/api/specs/yaml"): {"json": spec},
        ("POST", "/api/specs/parse"): {"json": {"yaml": "model: tiny\nspec: {}\n"}},
        ("GET", "/api/runs/compare"): {"params": {"job_id": [objects["job_id"], "ftjob-another000000"]}},
        ("PUT", "/api/serving/routes/{name}"): {"json": {"variants": [{"model": "team-a-model:1", "weight": 1}]}},
        ("POST", "/api/serving/routes/{name}/promote"): {"json": {}},
    }


def operations(server):
    schema = httpx.get(server.url + "/openapi.json").json()
    for path, item in schema["paths"].items():
        for method in item:
            yield method.upper(), path


def test_every_route_refuses_another_teams_objects(server, team_a):
    bodies = _bodies(team_a)
    secrets = [team_a["file_id"], team_a["upload_id"], team_a["job_id"], team_a["trigger_id"], "team-a-model"]
    walked = 0
    for method, path in operations(server):
        if (method, path) in PUBLIC:
            continue
        walked += 1
        concrete = re.sub(r"\{(\w+)\}", lambda m: team_a[m.group(1)] if m.group(1) != "name" or "metrics" not in path
                          else "accuracy", path)
        assert call(server, None, method, concrete, **bodies.get((method, path), {})).status_code == 401, path
        response = call(server, "b", method, concrete, **bodies.get((method, path), {}))
        where = f"{method} {path} -> {response.status_code} {response.text[:200]}"
        if (method, path) in ADMIN_ONLY:
            assert response.status_code == 403, where
        elif (method, path) in OWN_CREATIONS:
            continue
        elif (method, path) in ABOUT_THE_BODY:
            assert response.status_code == 200, where
        elif method == "POST" and path == "/api/metrics/{name}":
            assert response.status_code == 200 and response.json()["jobs_started"] == [], where
        elif "{" in path or method in ("POST", "PATCH", "PUT", "DELETE") or "params" in bodies.get((method, path), {}):
            assert response.status_code == 404, where
        else:
            assert response.status_code == 200, where
            assert not any(s in response.text for s in secrets), where
    assert walked >= 40
    # Nothing of team a's changed.
    job = call(server, "a", "GET", f"/api/jobs/{team_a['job_id']}").json()
    assert job["status"] == "queued" and job["priority"] == "normal"
    assert call(server, "a", "GET", f"/v1/files/{team_a['file_id']}").status_code == 200
    assert call(server, "a", "GET", f"/api/triggers/{team_a['trigger_id']}").status_code == 200
    assert call(server, "a", "GET", f"/v1/uploads/{team_a['upload_id']}/cancel").status_code == 405


def test_admin_sees_every_team(server, team_a):
    admin_key = make_key(server.app, "", admin=True)
    listing = httpx.get(server.url + "/v1/fine_tuning/jobs", headers={"authorization": f"Bearer {admin_key}"}).json()
    assert team_a["job_id"] in [j["id"] for j in listing["data"]]


def test_keys_are_stored_hashed(server):
    from tunewise.jobs.store.models import ApiKey

    with server.app.state.ctx.db.session() as session:
        rows = list(session.scalars(select(ApiKey)))
    stored = json.dumps([[r.hash, r.prefix, r.name] for r in rows])
    for key in server.keys.values():
        assert key not in stored and key[12:] not in stored
    assert all(r.hash.startswith("$argon2id$") for r in rows)


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_oversized_and_malformed_uploads_are_refused(server):
    big = b'{"text": "' + b"x" * 70_000 + b'"}\n'
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("big.jsonl", big)},
                       data={"purpose": "fine-tune"}), 413)["code"] == "request_too_large"
    assert _error(call(server, "a", "POST", "/v1/files", data={"purpose": "fine-tune"}), 400)["param"] == "file"
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("a.jsonl", b"{}\n")}), 400)["param"] == "purpose"
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("a.exe", b"MZ")},
                       data={"purpose": "fine-tune"}), 400)["code"] == "invalid_file_format"
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("a.jsonl", b"\x00\x01\x02")},
                       data={"purpose": "fine-tune"}), 400)["code"] == "invalid_file_format"
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("a.jsonl", b"")},
                       data={"purpose": "fine-tune"}), 400)["param"] == "file"
    assert _error(call(server, "a", "POST", "/v1/files", files={"file": ("a.jsonl", b"{}\n")},
                       data={"purpose": "batch"}), 400)["param"] == "purpose"
    broken = call(server, "a", "POST", "/v1/files", content=b"--x\r\nnot a form",
                  headers={"content-type": "multipart/form-data; boundary=x"})
    assert 400 <= broken.status_code < 500
    assert _error(call(server, "a", "POST", "/v1/fine_tuning/jobs", content=b"{not json",
                       headers={"content-type": "application/json"}), 400)
    assert _error(call(server, "a", "POST", "/v1/fine_tuning/jobs", json={"model": "tiny", "training_file": "x",
                                                                          "padding": "y" * 40_000}), 413)
    upload = call(server, "a", "POST", "/v1/uploads", json={"bytes": 10**9, "filename": "x.jsonl",
                                                            "mime_type": "text/jsonl", "purpose": "fine-tune"})
    assert _error(upload, 413)["param"] == "bytes"
    upload = call(server, "a", "POST", "/v1/uploads", json={"bytes": 5000, "filename": "x.jsonl",
                                                            "mime_type": "text/jsonl", "purpose": "fine-tune"}).json()
    assert _error(call(server, "a", "POST", f"/v1/uploads/{upload['id']}/parts",
                       files={"data": ("p", b"x" * 3000)}), 413)
    assert call(server, "a", "GET", "/health").status_code == 200  # and the server keeps serving


def test_names_and_ids_never_reach_a_path(server):
    traversal = call(server, "a", "POST", "/v1/files", files={"file": ("../../../etc/evil.jsonl", b'{"text": "x"}\n')},
                     data={"purpose": "fine-tune"})
    assert traversal.status_code == 200 and traversal.json()["filename"] == "evil.jsonl"
    stored = list((server.home / "files").iterdir())
    assert stored and all(p.name.startswith(("file-", "part_")) for p in stored)  # only our own ids
    for bad in ("..%2F..%2Fetc%2Fpasswd", "file-..", "%00"):
        assert call(server, "a", "GET", f"/v1/files/{bad}/content").status_code == 404

