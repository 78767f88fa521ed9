"""The playground (models side by side, streamed by our JS from /v1/chat/completions with the session
cookie and CSRF token, feedback to /v1/feedback) and the admin's operations view."""

from __future__ import annotations

import json


def ft_model(portal, role: str, team: str = "team-a") -> str:
    return portal.browser(team).get(f"/api/jobs/{portal.jobs[role]}").json()["fine_tuned_model"]


def test_playground_offers_base_and_own_models(portal):
    mine, theirs = ft_model(portal, "good"), ft_model(portal, "other", "team-b")
    page = portal.browser().get(f"/playground?model={mine}")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<script src="/static/portal.js" defer></script>' in html and 'id="playground"' in html
    for selector in ('id="prompt"', 'id="max_tokens"', 'id="temperature"', 'data-column="1"', 'class="answer"',
                     'class="served', 'class="thumbs', 'value="up"', 'value="down"', 'class="thanks"'):
        assert selector in html, selector  # what static/portal.js reads
    assert f'<option value="{mine}" selected>' in html and '<option value="tiny" selected>' in html
    assert theirs not in html
    twin = portal.browser().get(f"/playground.json?model={mine}").json()
    assert twin["columns"] == ["tiny", mine, ""]
    assert {"tiny", mine} <= {m["id"] for m in twin["models"]} and theirs not in {m["id"] for m in twin["models"]}
    checkpoint = f"{mine}:ckpt-step-2"  # the job page's "chat with this checkpoint" link
    twin = portal.browser().get("/playground.json", params={"model": checkpoint}).json()
    assert twin["columns"][1] == checkpoint and checkpoint in {m["id"] for m in twin["models"]}


def test_the_page_script_streams_chat_and_sends_feedback(portal):
    """The requests static/portal.js makes: the OpenAI route, signed in by cookie and CSRF header."""
    script = portal.browser().get("/static/portal.js").text
    assert '"/v1/chat/completions"' in script and "stream: true" in script and '"/v1/feedback"' in script
    browser, mine = portal.browser(), ft_model(portal, "good")
    body = {"model": mine, "stream": True, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "hello"}]}
    refused = browser.post("/v1/chat/completions", json=body)  # the cookie alone: no CSRF token
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    with browser.stream("POST", "/v1/chat/completions", json=body,
                        headers={"x-csrf-token": portal.csrf["team-a"]}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-tunewise-model"] == mine and response.headers["x-tunewise-model-version"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["model"] == mine and any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks)
    portal.app.state.ctx.extras["serving"].flush_records()  # answers are stored in the background
    thumbs = browser.post("/v1/feedback", json={"response_id": chunks[0]["id"], "thumbs": "up"},
                          headers={"x-csrf-token": portal.csrf["team-a"]})
    assert thumbs.status_code == 200, thumbs.text
    other = portal.browser("team-b").post("/v1/feedback", json={"response_id": chunks[0]["id"], "thumbs": "down"},
                                          headers={"x-csrf-token": portal.csrf["team-b"]})
    assert other.status_code == 404  # team-b cannot rate team-a's answer


def test_without_script_the_form_answers_side_by_side(portal):
    mine, theirs = ft_model(portal, "good"), ft_model(portal, "other", "team-b")
    form = {"csrf_token": portal.csrf["team-a"], "prompt": "Say hi", "max_tokens": "3", "temperature": "0",
            "model_1": "tiny", "model_2": mine, "model_3": theirs}
    page = portal.browser().post("/playground", data=form)
    assert page.status_code == 200, page.text
    assert page.text.count("served by ") == 2 and "does not exist or you do not have access" in page.text
    response_id = page.text.split('data-response="')[2].split('"')[0]
    portal.app.state.ctx.extras["serving"].flush_records()
    assert response_id.startswith("chatcmpl")
    done = portal.browser().post("/playground/feedback", data={"csrf_token": portal.csrf["team-a"],
                                                               "response_id": response_id, "thumbs": "down"})
    assert done.status_code == 303 and done.headers["location"] == "/playground"
    forged = portal.browser().post("/playground", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403


def test_operations_view_is_the_admins(portal):
    admin = portal.browser("admin")
    portal.browser().post("/v1/chat/completions", headers=portal.browser().bearer, json={  # serving has started
        "model": ft_model(portal, "good"), "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    page = admin.get("/ops")
    assert page.status_code == 200, page.text
    assert "Pool default" in page.text and "CPU slots" in page.text and "Pool gpu" in page.text
    slice_row = page.text.split("slice gpu1/mig0</td>")[1].split("</tr>")[0]
    assert portal.jobs["on-slice"] in slice_row and "team-b" in slice_row
    assert "free" in page.text.split("slice gpu1/mig1</td>")[1].split("</tr>")[0]
    assert "40 of 79.1 GiB" in page.text  # half of the whole card
    assert "ran out of memory at step 3" in page.text  # the failed job, with its reason
    assert 'id="serving-models"' in page.text and "tiny" in page.text
    twin = admin.get("/ops.json").json()
    assert twin["ops"]["pools"][0]["nodes"][0]["name"] == "local"
    quotas = {q["team"]: q for q in twin["ops"]["quotas"]}
    assert quotas["team-a"]["quota"]["gpus"] == 1 and quotas["team-a"]["running"] == 1
    assert quotas["team-b"]["quota"] is None and quotas["team-b"]["used_gpu_memory_gib"] == 39.4
    assert portal.jobs["broken"] in [f["id"] for f in twin["ops"]["recent_failures"]]
    assert twin["serving"]["started"] is True and twin["serving"]["models"]
    assert 'href="/ops"' in admin.get("/").text


def test_operations_view_is_refused_to_a_team(portal):
    team = portal.browser()
    assert team.get("/ops").status_code == 403
    assert team.get("/ops.json").status_code == 403
    assert 'href="/ops"' not in team.get("/").text


def test_a_server_without_serving_says_so(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from tests.control_plane_support import make_key
    from tunewise.server import serving
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    monkeypatch.setattr(serving, "serving_available", lambda: False)
    app = create_app(ServerConfig(workspace=str(tmp_path / "home")), run_loop=False)
    browser = TestClient(app)
    browser.post("/api/session", headers={"authorization": f"Bearer {make_key(app, 'team-a')}"})
    page = browser.get("/playground")
    assert page.status_code == 200 and "installed without serving" in page.text
    assert browser.get("/playground.json").json()["serving"] is False
