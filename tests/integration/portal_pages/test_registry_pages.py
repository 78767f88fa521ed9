"""The registry pages: register, promote (the gate decides), rollback, history, A/B routes; CSRF on
every form; another team's model is not found."""

from __future__ import annotations

import base64
import json

NAME = "assistant"


def flash(response) -> dict:
    raw = response.cookies.get("tunewise_flash")
    return json.loads(base64.urlsafe_b64decode(raw)) if raw else {}


def post(portal, path: str, team: str = "team-a", **form):
    return portal.browser(team).post(path, data={"csrf_token": portal.csrf[team], **form},
                                     headers={"referer": f"http://testserver/registry/{NAME}"})


def production(portal, team: str = "team-a") -> str | None:
    twin = portal.browser(team).get(f"/registry/{NAME}.json").json()
    return next((v["version"] for v in twin["versions"] if "production" in v["aliases"]), None)


def test_register_three_runs_as_versions(portal):
    assert portal.browser().get("/registry.json").json()["models"] == []
    report = portal.browser().get(f"/jobs/{portal.jobs['good']}/report").text
    assert f'href="/registry?job_id={portal.jobs["good"]}"' in report
    page = portal.browser().get(f"/registry?job_id={portal.jobs['good']}")
    assert 'id="register-form"' in page.text and f'<option value="{portal.jobs["good"]}" selected>' in page.text
    assert portal.jobs["other"] not in page.text  # team-b's job cannot be registered by team-a
    for role, version in (("good", "1"), ("weak", "2"), ("better", "3")):
        done = post(portal, "/registry", job_id=portal.jobs[role], name=NAME)
        assert done.status_code == 303 and done.headers["location"] == f"/registry/{NAME}"
        assert f"version {version}" in flash(done)["message"]
    twin = portal.browser().get(f"/registry/{NAME}.json").json()
    assert [(v["version"], v["gate"]) for v in twin["versions"]] == [("3", "passed"), ("2", "failed"), ("1", "passed")]
    assert twin["versions"][0]["lineage"]["tunewise.artifact_sha256"]
    page = portal.browser().get(f"/registry/{NAME}")
    assert "Lineage" in page.text and 'aria-label="Promote version 2 to production"' in page.text


def test_forms_without_the_csrf_token_are_refused(portal):
    browser = portal.browser()
    for form in ({}, {"csrf_token": "forged"}):
        refused = browser.post(f"/registry/{NAME}/promote", data={"version": "1", "to": "production", **form})
        assert refused.status_code == 403 and "expired or came from another site" in refused.text
    refused = browser.post("/registry", data={"job_id": portal.jobs["good"], "name": "sneaky"})
    assert refused.status_code == 403
    assert production(portal) is None
    assert [m["name"] for m in browser.get("/registry.json").json()["models"]] == [NAME]


def test_promote_is_refused_when_the_gate_failed(portal):
    refused = post(portal, f"/registry/{NAME}/promote", version="2", to="production")
    assert refused.status_code == 303 and refused.headers["location"] == f"/registry/{NAME}"
    message = flash(refused)
    assert message["kind"] == "error" and "failed its evaluation gate" in message["message"]
    assert production(portal) is None
    shown = portal.browser().get(f"/registry/{NAME}")  # the browser kept the flash cookie
    assert 'class="flash error" role="alert"' in shown.text


def test_promote_then_roll_back_with_history(portal):
    for version in ("1", "3"):
        done = post(portal, f"/registry/{NAME}/promote", version=version, to="production")
        assert flash(done)["kind"] == "notice", flash(done)
    assert production(portal) == "3"
    back = post(portal, f"/registry/{NAME}/rollback")
    assert "from version 3 to 1" in flash(back)["message"]
    assert production(portal) == "1"
    twin = portal.browser().get(f"/registry/{NAME}.json").json()
    moves = [(e["action"], e["to"]) for e in twin["history"] if e.get("alias") == "production"]
    assert moves == [("promote", "1"), ("promote", "3"), ("rollback", "1")]
    assert [e["version"] for e in twin["history"] if e["action"] == "register"] == ["1", "2", "3"]
    assert {e["who"].split(" (key")[0] for e in twin["history"]} == {"team team-a"}  # the team, not the server's login
    assert 'id="history"' in portal.browser().get(f"/registry/{NAME}").text


def test_another_team_sees_no_model_and_cannot_act(portal):
    other = portal.browser("team-b")
    assert other.get(f"/registry/{NAME}").status_code == 404
    assert other.get(f"/registry/{NAME}.json").status_code == 404
    assert other.get("/registry.json").json()["models"] == []
    refused = post(portal, f"/registry/{NAME}/promote", team="team-b", version="3", to="production")
    assert refused.status_code == 303 and flash(refused)["kind"] == "error"
    assert production(portal) == "1"
    assert NAME in [m["name"] for m in portal.browser("admin").get("/registry.json").json()["models"]]
    offered = {team: {m["id"] for m in portal.browser(team).get("/playground.json").json()["models"]}
               for team in ("team-a", "team-b")}
    assert f"{NAME}:1" in offered["team-a"] and f"{NAME}@production" in offered["team-a"]
    assert not any(m.startswith(NAME) for m in offered["team-b"])  # nor in team-b's playground


def test_ab_route_traffic_feedback_and_promote_the_winner(portal):
    done = post(portal, f"/registry/{NAME}/route", variant_1=f"{NAME}:1", weight_1="50", variant_2=f"{NAME}:3",
                weight_2="50")
    assert flash(done)["kind"] == "notice", flash(done)
    bearer = portal.browser().bearer
    for user in range(8):  # sticky per user: both variants get traffic
        answer = portal.browser().post("/v1/chat/completions", headers=bearer, json={
            "model": NAME, "user": f"user-{user}", "max_tokens": 2, "temperature": 0,
            "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text
        thumbs = "up" if answer.headers.get("x-tunewise-model-version", "").endswith("3") else "down"
        portal.app.state.ctx.extras["serving"].flush_records()  # answers are stored in the background
        assert portal.browser().post("/v1/feedback", headers=bearer,
                                     json={"response_id": answer.json()["id"], "thumbs": thumbs}).status_code == 200
    twin = portal.browser().get(f"/registry/{NAME}.json").json()
    assert twin["route"]["name"] == NAME
    report = twin["route_report"]
    assert report["answers"] == 8 and sum(v["requests"] for v in report["variants"]) == 8
    assert sum(v["feedback_count"] for v in report["variants"]) == 8
    page = portal.browser().get(f"/registry/{NAME}")
    assert 'id="route-report"' in page.text and 'id="promote-winner"' in page.text
    promoted = post(portal, f"/registry/{NAME}/route/promote", variant=f"{NAME}:3")
    assert flash(promoted)["kind"] == "notice", flash(promoted)
    assert production(portal) == "3"
    last = portal.browser().get(f"/registry/{NAME}.json").json()["history"][-1]
    assert last["to"] == "3" and last["who"].startswith("team team-a")
    removed = post(portal, f"/registry/{NAME}/route/delete")
    assert flash(removed)["kind"] == "notice" and portal.browser().get(f"/registry/{NAME}.json").json()["route"] is None


def test_the_model_page_works_without_serving(portal, monkeypatch):
    monkeypatch.setitem(portal.app.state.ctx.extras, "serving", None)  # a server built without serving
    assert portal.browser().get(f"/registry/{NAME}.json").json()["route"] is None
    assert "No route" in portal.browser().get(f"/registry/{NAME}").text


def test_a_bad_route_weight_names_the_field(portal):
    refused = post(portal, f"/registry/{NAME}/route", variant_1=f"{NAME}:1", weight_1="lots")
    assert flash(refused)["kind"] == "error" and "weight" in flash(refused)["message"]
