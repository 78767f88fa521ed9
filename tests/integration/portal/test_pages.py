"""Every portal route the frame, the new-job page, the jobs list, the queue and the job page own, in process
against the real app (real SQLite store, the real scheduling loop), HTML and JSON twin side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.control_plane_support import wait_for
from tests.helpers import write_chat_dataset
from tests.portal_support import broken_dataset, csrf_of, hidden_value, sign_in


def client_for(app, team: str) -> TestClient:
    client = TestClient(app)
    assert sign_in(client, app.state.keys[team]).status_code == 303
    return client


@pytest.fixture(scope="module")
def team_a(portal_app):
    return client_for(portal_app, "team-a")


@pytest.fixture(scope="module")
def submitted(portal_app, team_a, tmp_path_factory):
    """A job team-a submitted through the new-job page: (job id, the new page's URL it was planned on)."""
    data = write_chat_dataset(tmp_path_factory.mktemp("data") / "good.jsonl", rows=24)
    csrf = csrf_of(team_a.get("/new").text)
    uploaded = team_a.post("/new/upload", data={"csrf_token": csrf, "target": "spec.data.train",
                                                "return_query": "model=tiny&spec.train.max_steps=3"},
                           files={"file": ("good.jsonl", data.read_bytes())}, follow_redirects=False)
    planned = uploaded.headers["location"].split("#")[0]
    page = team_a.get(planned).text
    made = team_a.post("/new/submit", data={"csrf_token": csrf, "request": hidden_value(page, "request")},
                       follow_redirects=False)
    assert made.status_code == 303, made.text
    job_id = made.headers["location"].rsplit("/", 1)[1]
    wait_for(lambda: team_a.get(f"/jobs/{job_id}.json").json()["job"]["status"] == "queued", 60,
             what="the job to be validated and queued")
    return job_id, planned


# -- sign in and out --------------------------------------------------------------------------------------


def test_pages_need_a_session(portal_app):
    anonymous = TestClient(portal_app)
    page = anonymous.get("/queue?x=1", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/signin?next=/queue%3Fx%3D1"
    twin = anonymous.get("/queue.json")
    assert twin.status_code == 401 and twin.json()["error"]["message"]
    assert anonymous.get("/signin.json").json()["signin"]["api"].startswith("POST /api/session")


def test_sign_in_sets_an_httponly_samesite_cookie_and_sign_out_ends_it(portal_app):
    client = TestClient(portal_app)
    done = sign_in(client, portal_app.state.keys["team-a"], next_path="/queue")
    assert done.status_code == 303 and done.headers["location"] == "/queue"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("tunewise_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    me = client.get("/index.json")
    assert me.status_code == 200
    page = client.get("/").text
    assert "team <b>team-a</b>" in page and 'href="/runs"' in page and 'href="/ops"' not in page
    forged = client.post("/signout", data={"csrf_token": "not-the-token"}, follow_redirects=False)
    assert forged.status_code == 303 and client.get("/index.json").status_code == 200  # a forged form does nothing
    out = client.post("/signout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert out.headers["location"] == "/signin"
    client.cookies.set("tunewise_session", cookie.split(";")[0].split("=", 1)[1])  # the old cookie, replayed
    assert client.get("/index.json").status_code == 401


def test_sign_in_refuses_a_bad_key_a_foreign_form_and_an_outside_redirect(portal_app):
    client = TestClient(portal_app)
    bad = client.post("/signin", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', client.get(
        "/signin").text).group(1), "api_key": "twk_wrong"})
    assert bad.status_code == 401 and "not valid" in bad.text
    foreign = TestClient(portal_app).post("/signin", data={"csrf_token": "guess", "api_key": portal_app.state.keys[
        "team-a"]})
    assert foreign.status_code == 403 and "tunewise_session" not in foreign.headers.get("set-cookie", "")
    away = sign_in(TestClient(portal_app), portal_app.state.keys["team-a"], next_path="//evil.example/x")
    assert away.headers["location"] == "/"


# -- new job ----------------------------------------------------------------------------------------------


def test_a_broken_upload_names_its_rows_and_offers_no_submit(portal_app, team_a, tmp_path):
    csrf = csrf_of(team_a.get("/new").text)
    bad = broken_dataset(tmp_path / "bad.jsonl")
    posted = team_a.post("/new/upload", data={"csrf_token": csrf, "target": "spec.data.train",
                                              "return_query": "model=tiny"},
                         files={"file": ("bad.jsonl", bad.read_bytes())}, follow_redirects=False)
    target = posted.headers["location"]
    assert posted.status_code == 303 and target.startswith("/new?model=tiny&spec.data.train=file-")
    page = team_a.get(target.split("#")[0]).text
    assert "bad.jsonl:5" in page and "bad.jsonl:10" in page and "Submit job" not in page
    twin = team_a.get(target.split("#")[0].replace("/new?", "/new.json?")).json()
    lines = sorted(e["line"] for e in twin["file_report"]["report"]["errors"])
    assert lines == [5, 10] and twin["plan"] is None and twin["dry_run"] is None


def test_uploads_and_submit_refuse_a_missing_csrf_token(portal_app, team_a, tmp_path):
    data = write_chat_dataset(tmp_path / "d.jsonl", rows=12)
    upload = team_a.post("/new/upload", data={"target": "spec.data.train"}, files={"file": ("d.jsonl",
                                                                                           data.read_bytes())})
    assert upload.status_code == 403 and "expired" in upload.text
    submit = team_a.post("/new/submit", data={"csrf_token": "wrong", "request": '{"model": "tiny", "spec": {}}'})
    assert submit.status_code == 403
    assert team_a.get("/index.json").json()["jobs"] == [] or all(
        j["spec"]["data"]["train"] != "d.jsonl" for j in team_a.get("/index.json").json()["jobs"])


def test_the_plan_preselects_the_recommendation_and_the_dry_run_places_the_job(team_a, submitted):
    _, planned = submitted
    twin = team_a.get(planned.replace("/new?", "/new.json?")).json()
    plan, dry = twin["plan"], twin["dry_run"]
    assert plan["recommendation"]["mode"] == twin["recommended_method"] == twin["request"]["spec"]["method"]["name"]
    assert plan["recommendation"]["reasons"] and {m["mode"] for m in plan["modes"]} >= {"full", "lora", "qlora"}
    assert dry["ok"] and dry["queue"]["reason"] and dry["examples"] == 24
    page = team_a.get(planned).text
    assert "(recommended)" in page and 'class="chosen"' in page and "Estimated start" in page
    assert 'id="lengths-t"' in page  # the token-length histogram, drawn on the server


def test_the_form_round_trips_through_yaml(portal_app, team_a, submitted):
    _, planned = submitted
    query = planned.split("?", 1)[1] + "&spec.train.learning_rate=0.0003&gate.0.key=val_loss&gate.0.threshold=%3C%3D+9"
    text = team_a.get(f"/new/spec.yaml?{query}")
    assert text.status_code == 200 and "attachment" in text.headers["content-disposition"]
    spec = yaml.safe_load(text.text)
    assert spec["model"] == "tiny" and spec["spec"]["train"]["learning_rate"] == 0.0003
    assert spec["spec"]["eval"]["gate"] == {"val_loss": "<= 9"}
    csrf = csrf_of(team_a.get("/new").text)
    loaded = team_a.post("/new/spec", data={"csrf_token": csrf}, files={"spec_file": ("job.yaml", text.content)},
                         follow_redirects=False)
    back = team_a.get(loaded.headers["location"].replace("/new?", "/new.json?")).json()["request"]
    assert back["spec"]["train"]["learning_rate"] == 0.0003 and back["spec"]["eval"]["gate"] == {"val_loss": "<= 9"}
    assert back["spec"]["train"]["max_steps"] == 3 and back["model"] == "tiny"
    broken = team_a.post("/new/spec", data={"csrf_token": csrf}, files={"spec_file": ("bad.yaml", b"spec: [1, 2")},
                         headers={"referer": "http://testserver/new"})
    assert broken.status_code == 200 and "bad.yaml" in broken.text  # back on the form with the error named


# -- jobs, queue, job page --------------------------------------------------------------------------------


def test_jobs_and_queue_show_the_job_with_its_place_and_reason(team_a, submitted):
    job_id, _ = submitted
    jobs = team_a.get("/index.json").json()["jobs"]
    assert job_id in [j["id"] for j in jobs]
    assert job_id in team_a.get("/").text and job_id in team_a.get("/?status=queued").text
    assert job_id not in team_a.get("/?status=running").text
    waiting = [j for pool in team_a.get("/queue.json").json()["pools"] for j in pool["waiting"]]
    mine = next(j for j in waiting if j["id"] == job_id)
    assert mine["position"] >= 1 and mine["reason"] == "quota"
    page = team_a.get("/queue").text
    assert job_id in page and "<b>quota</b>" in page and f'aria-label="Priority of {job_id}"' in page


def test_the_job_page_and_its_twin(team_a, submitted):
    job_id, _ = submitted
    twin = team_a.get(f"/jobs/{job_id}.json").json()
    asked = team_a.get(f"/jobs/{job_id}", headers={"accept": "application/json"}).json()  # the twin by Accept
    assert asked.keys() == twin.keys() and asked["job"]["id"] == job_id
    assert twin["job"]["id"] == job_id and twin["job"]["status"] == "queued"
    assert any("queued" in e["message"] for e in twin["events"]) and "log_tail" in twin
    page = team_a.get(f"/jobs/{job_id}").text
    assert 'id="live"' in page and 'data-final="false"' in page and "Change priority" in page
    svg = team_a.get(f"/jobs/{job_id}/curves.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text


def test_owner_changes_priority_pauses_resumes_and_cancels(portal_app, team_a, tmp_path):
    data = write_chat_dataset(tmp_path / "second.jsonl", rows=12)
    csrf = csrf_of(team_a.get("/new").text)
    up = team_a.post("/new/upload", data={"csrf_token": csrf, "return_query": "model=tiny"},
                     files={"file": ("second.jsonl", data.read_bytes())}, follow_redirects=False)
    request = hidden_value(team_a.get(up.headers["location"].split("#")[0]).text, "request")
    job_id = team_a.post("/new/submit", data={"csrf_token": csrf, "request": request},
                         follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    status = lambda: team_a.get(f"/jobs/{job_id}.json").json()["job"]  # noqa: E731
    wait_for(lambda: status()["status"] == "queued", 60, what="queued")
    classes = list(team_a.get("/queue.json").json()["priority_classes"])
    other = next(c for c in classes if c != status()["priority"])
    changed = team_a.post(f"/jobs/{job_id}/priority", data={"csrf_token": csrf, "priority": other})
    assert changed.status_code == 200 and f"priority set to {other}" in changed.text
    assert status()["priority"] == other
    assert team_a.post(f"/jobs/{job_id}/pause", data={"csrf_token": "wrong"}).status_code == 403
    team_a.post(f"/jobs/{job_id}/pause", data={"csrf_token": csrf})
    assert status()["status"] == "paused"
    team_a.post(f"/jobs/{job_id}/resume", data={"csrf_token": csrf})
    assert status()["status"] == "queued"
    done = team_a.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf})
    assert "cancel requested" in done.text
    wait_for(lambda: status()["status"] == "cancelled", 30, what="cancelled")


def team_a_status(app, job_id: str) -> str:
    return client_for(app, "team-a").get(f"/jobs/{job_id}.json").json()["job"]["status"]


def test_another_team_sees_none_of_it_and_the_admin_sees_all(portal_app, submitted):
    job_id, _ = submitted
    team_b = client_for(portal_app, "team-b")
    assert job_id not in [j["id"] for j in team_b.get("/index.json").json()["jobs"]]
    assert team_b.get(f"/jobs/{job_id}").status_code == 404
    assert team_b.get(f"/jobs/{job_id}.json").status_code == 404
    assert team_b.get(f"/jobs/{job_id}/curves.svg").status_code == 404
    waiting = [j for pool in team_b.get("/queue.json").json()["pools"] for j in pool["waiting"]]
    assert waiting and all(not j["own"] and j.get("id") != job_id for j in waiting)
    assert job_id not in team_b.get("/queue").text and job_id not in team_b.get("/").text
    csrf = csrf_of(team_b.get("/").text)
    refused = team_b.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf})
    assert "Could not find" in refused.text and 'class="flash error"' in refused.text
    assert team_a_status(portal_app, job_id) == "queued"
    admin = client_for(portal_app, "admin")
    listed = admin.get("/index.json").json()["jobs"]
    assert any(j["id"] == job_id and j["team"] == "team-a" for j in listed)
    page = admin.get("/").text
    assert "Jobs of every team" in page and 'href="/ops"' in page
    assert admin.get(f"/jobs/{job_id}").status_code == 200


def test_errors_are_pages_and_twins_are_json(team_a):
    missing = team_a.get("/jobs/ftjob-nope")
    assert missing.status_code == 404 and "Not found" in missing.text and "<html" in missing.text
    assert team_a.get("/jobs/ftjob-nope.json").json()["error"]["message"]
    assert team_a.get("/static/portal.css").status_code == 200


def test_a_failed_job_says_why_in_plain_words(team_a, tmp_path):
    csrf = csrf_of(team_a.get("/new").text)
    bad = broken_dataset(tmp_path / "rows.jsonl")
    up = team_a.post("/new/upload", data={"csrf_token": csrf, "return_query": "model=tiny"},
                     files={"file": ("rows.jsonl", bad.read_bytes())}, follow_redirects=False)
    file_id = re.search(r"spec\.data\.train=(file-[A-Za-z0-9]+)", up.headers["location"]).group(1)
    request = '{"model": "tiny", "spec": {"data": {"train": "%s"}}}' % file_id  # the API takes it; it fails
    job_id = team_a.post("/new/submit", data={"csrf_token": csrf, "request": request},
                         follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    job = wait_for(lambda: (j := team_a.get(f"/jobs/{job_id}.json").json()["job"])["status"] == "failed" and j, 60,
                   what="the job to fail validation")
    assert job["error"]["code"] == "invalid_training_file" and "rows.jsonl:5" in job["error"]["message"]
    page = team_a.get(f"/jobs/{job_id}").text
    assert "Why it failed" in page and "rows.jsonl:5" in page and "no GPU time was spent" in page
    assert 'data-final="true"' in page and "Cancel</button>" not in page


def test_the_rag_diagnostic_page(team_a):
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "plan"
    one_question = (fixtures / "qa_in_docs.jsonl").read_text().splitlines()[0].encode()  # three answers to generate
    csrf = csrf_of(team_a.get("/new/diagnose").text)
    query = ""
    for name, content, target in (("qa.jsonl", one_question, "questions_file"),
                                  ("docs.jsonl", (fixtures / "docs.jsonl").read_bytes(), "docs_file")):
        posted = team_a.post("/new/upload", data={"csrf_token": csrf, "target": target, "return_to": "/new/diagnose",
                                                  "return_query": query},
                             files={"file": (name, content)}, follow_redirects=False)
        assert posted.headers["location"].startswith("/new/diagnose?")
        query = posted.headers["location"].split("?", 1)[1]
    twin = team_a.get(f"/new/diagnose.json?model=tiny&{query}").json()
    assert twin["diagnosis"]["verdict"] in ("rag", "fine-tune", "fine-tune+rag", "none")
    assert set(twin["diagnosis"]["scores"]) >= {"closed_book"} and twin["error"] is None
    page = team_a.get(f"/new/diagnose?model=tiny&{query}").text
    assert "Verdict:" in page and "Retrieval found a passage" in page
