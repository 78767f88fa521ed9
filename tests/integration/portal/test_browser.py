"""The portal in a real headless Chromium against a real server (uvicorn on a free port, SQLite, the
local executor running `tunewise train` on the tiny model): a team's whole journey, a second team that
sees none of it, phone width, and axe-core's accessibility check of the main pages.

The tests run in order and share one server and one browser; screenshots of every main page are saved
under out/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from tests.browser_support import PHONE, axe_violations, browser, fits_the_width, screenshot  # noqa: F401
from tests.control_plane_support import LiveServer
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.portal_support import broken_dataset, team_keys

STEPS = 8
WAIT_MS = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    app, _ = start_server(tmp_path_factory, tiny_model_dir, name="portal-browser")
    with LiveServer(app) as live:
        live.keys, live.state, live.requests = team_keys(app), {}, []
        yield live


def signed_in(browser, server, team: str, **context):  # noqa: F811
    """A fresh browser context (its own cookies) signed in as `team` through the form, by keyboard."""
    page = browser.new_context(**context).new_page()
    page.on("request", lambda request: server.requests.append(request.url))
    page.goto(server.url + "/")
    assert "/signin" in page.url  # every page asks who you are first
    page.get_by_label("API key").fill(server.keys[team])
    page.keyboard.press("Enter")
    page.wait_for_url(server.url + "/")
    return page


def test_journey_upload_fix_plan_submit_watch(browser, server, tmp_path):  # noqa: F811
    page = signed_in(browser, server, "team-a")
    assert page.get_by_role("heading", name="Jobs").is_visible()
    screenshot(page, "jobs-empty")

    page.get_by_role("link", name="New job").first.click()
    page.get_by_label("Upload a dataset").set_input_files(str(broken_dataset(tmp_path / "support.jsonl")))
    page.get_by_role("button", name="Upload and check").click()
    problems = page.locator("ul.problems").first
    assert "support.jsonl:5" in problems.inner_text() and "support.jsonl:10" in problems.inner_text()
    assert page.get_by_role("button", name="Submit job").count() == 0
    screenshot(page, "new-job-errors")

    page.get_by_label("Upload a dataset").set_input_files(str(write_chat_dataset(tmp_path / "support.jsonl", rows=40)))
    page.get_by_role("button", name="Upload and check").click()
    page.get_by_role("heading", name="3. The plan").wait_for()
    page.locator("[id='spec.train.max_steps']").fill(str(STEPS))
    # A short evaluation (the report exists) without the forgetting check (its 30 paragraphs take a minute).
    page.locator("[id='spec.eval.max_examples']").fill("4")
    page.locator("[id='spec.eval.max_new_tokens']").fill("8")
    page.locator("[id='spec.eval.forgetting.enabled']").select_option("false")
    page.get_by_label("Gate metric 1").fill("val_loss")  # a gate the tiny model passes: it may be promoted
    page.locator("#gate-0-threshold").fill("<= 100")
    page.get_by_role("button", name="Check and plan").click()
    page.get_by_role("heading", name="4. Dry run and submit").wait_for()
    recommended = page.locator("tr.chosen th").inner_text()
    assert "(recommended)" in recommended
    assert page.locator("#method option:checked").inner_text().endswith("(recommended)")
    assert page.locator("#lengths-t").count() == 1  # the token-length histogram
    screenshot(page, "new-job-plan")

    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(re.compile(r"/jobs/ftjob-[A-Za-z0-9]+$"))
    job_url = page.url
    server.state["job_url"] = job_url
    # Live: the server's event stream moves the step counter without a reload.
    page.wait_for_function("Number((document.getElementById('job-step').textContent.match(/^\\d+/) || [0])[0]) > 0"
                           " || document.getElementById('live').dataset.final === 'true'", timeout=WAIT_MS)
    seen = _step(page)
    if page.locator("#live").get_attribute("data-final") == "false":  # the chart follows the steps, no reload
        page.wait_for_selector("#curves svg polyline, #curves svg circle", timeout=WAIT_MS)
    page.reload()  # the same live view after a reload: the job lives in the server, not in the tab
    assert page.url == job_url and _step(page) >= seen
    status = page.locator("#job-status .badge").inner_text()
    assert status in ("running", "succeeded"), status
    screenshot(page, "job-running")

    page.wait_for_selector("#live[data-final='true']", timeout=WAIT_MS)
    assert page.locator("#job-status .badge").inner_text() == "succeeded"
    assert _step(page) == STEPS
    assert page.locator("#curves svg polyline").count() >= 1  # the loss curve
    assert page.get_by_role("button", name=re.compile(r"Resume from step \d+")).count() >= 1
    assert page.get_by_role("link", name=re.compile(r"Chat with step \d+")).count() >= 1
    assert "successfully completed" in page.locator("#events").inner_text()
    screenshot(page, "job-succeeded")

    page.get_by_role("button", name=f"Resume from step {STEPS}").click()  # a new job from that checkpoint
    page.wait_for_url(re.compile(r"/jobs/ftjob-[A-Za-z0-9]+$"))
    assert page.url != job_url and f"from its checkpoint at step {STEPS}" in page.locator(".flash").inner_text()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("cancel requested").wait_for()
    page.goto(job_url)
    page.get_by_role("link", name="Evaluation report").click()
    assert page.url.endswith("/report")
    screenshot(page, "job-report")

    page.goto(server.url + "/")
    assert job_url.rsplit("/", 1)[1] in page.locator("table").inner_text()
    screenshot(page, "jobs")
    page.goto(server.url + "/queue")
    screenshot(page, "queue")
    page.close()


def _step(page) -> int:
    return int(re.match(r"\d+", page.locator("#job-step").inner_text()).group())


def test_register_promote_and_chat(browser, server):  # noqa: F811
    job_url = server.state.get("job_url")
    assert job_url, "the journey did not submit a job"
    page = signed_in(browser, server, "team-a")
    page.goto(job_url)
    page.get_by_role("link", name="Register this model").click()  # the registry's form, this job chosen
    assert page.locator("#register-job option:checked").get_attribute("value") == job_url.rsplit("/", 1)[1]
    page.get_by_label("Name", exact=False).fill("journey-bot")
    page.get_by_role("button", name="Register").click()
    assert "Registered journey-bot version 1" in page.locator(".flash").inner_text()
    page.get_by_role("button", name="Promote version 1 to production").click()
    assert "production" in page.locator(".flash").inner_text()
    screenshot(page, "registry-model")

    page.goto(f"{server.url}/playground?model=journey-bot")
    page.get_by_label("Prompt").fill("Say hello")
    page.get_by_label("Max tokens").fill("8")
    page.get_by_role("button", name="Ask").click()
    # Column 1 is the base model, column 2 the model the link named; both answers stream side by side.
    page.wait_for_function("[...document.querySelectorAll('[data-column] .served')].slice(0, 2)"
                           ".every((e) => e.textContent.startsWith('served by'))", timeout=WAIT_MS)
    assert "journey-bot" in page.locator("[data-column='2'] .served").inner_text()
    page.wait_for_selector("[data-column='2'] .thumbs:not([hidden])", timeout=WAIT_MS)  # the answer is complete
    screenshot(page, "playground")
    page.locator("[data-column='2'] .thumbs button[value=up]").click()  # recorded through /v1/feedback
    page.wait_for_function("(document.querySelector(\"[data-column='2'] .thanks\") || {}).textContent"
                           "?.includes('recorded up')", timeout=30_000)
    page.close()


def test_another_team_sees_none_of_it(browser, server):  # noqa: F811
    job_url = server.state.get("job_url")
    assert job_url, "the journey did not submit a job"
    page = signed_in(browser, server, "team-b")
    assert job_url.rsplit("/", 1)[1] not in page.content()
    page.goto(job_url)
    assert page.get_by_role("heading", name="Not found").is_visible()
    page.goto(job_url + ".json")
    assert "error" in page.content()
    if page.goto(server.url + "/registry").status == 200:
        assert "journey-bot" not in page.content()
    page.close()


def test_pages_fit_a_phone(browser, server):  # noqa: F811
    page = signed_in(browser, server, "team-a", viewport=PHONE, is_mobile=True)
    for path, name in (("/", "phone-jobs"), ("/new", "phone-new-job"), (server.state.get("job_url"), "phone-job"),
                       ("/registry", "phone-registry"), ("/playground", "phone-playground"), ("/runs", "phone-runs")):
        if path:
            page.goto(path if path.startswith("http") else server.url + path)
            assert fits_the_width(page), f"{path} scrolls sideways at phone width"
            screenshot(page, name)
    page.close()


def test_main_pages_have_no_critical_or_serious_accessibility_violations(browser, server):  # noqa: F811
    page = browser.new_context().new_page()
    page.goto(server.url + "/signin")
    found = {"/signin": axe_violations(page)}
    page.get_by_label("API key").fill(server.keys["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.goto(server.url + "/new")
    page.keyboard.press("Tab")  # the first stop skips the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    paths = ["/", "/new", "/queue", "/new/diagnose", "/jobs/ftjob-missing", "/runs", "/registry", "/playground",
             "/ops"]
    if server.state.get("job_url"):
        paths.append(server.state["job_url"])
    for path in paths:
        page.goto(path if path.startswith("http") else server.url + path)
        found[path] = axe_violations(page)
    assert not any(found.values()), found
    page.close()


def test_nothing_came_from_another_origin(browser, server):  # noqa: F811
    assert server.requests, "the browser tests recorded no request"
    elsewhere = sorted({url for url in server.requests if not url.startswith(server.url + "/")})
    assert not elsewhere, elsewhere  # no CDN, no web font, no analytics: everything is served by tunewise
