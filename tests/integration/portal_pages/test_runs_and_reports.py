"""Runs side by side and the evaluation report: pages, their JSON twins, team scoping."""

from __future__ import annotations


def test_compare_two_runs_overlays_curves_and_diffs_specs(portal):
    browser = portal.browser()
    good, weak = portal.jobs["good"], portal.jobs["weak"]
    page = browser.get(f"/runs?job_id={good}&job_id={weak}")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="compare-curves-t"' in html and "<polyline" in html  # the SVG, drawn on the server
    assert html.count("<polyline") == 4  # train and validation of each run
    assert "hyperparameters.n_epochs" in html or "train.epochs" in html  # where the specs differ
    twin = browser.get(f"/runs.json?job_id={good}&job_id={weak}").json()
    runs = twin["comparison"]["runs"]
    assert [r["id"] for r in runs] == [good, weak]
    assert runs[0]["final"]["val_loss"] == 2.2 and runs[1]["final"]["val_loss"] == 2.7
    assert [r["gate"]["passed"] for r in runs] == [True, False]
    assert any(d["values"][0] != d["values"][1] for d in twin["comparison"]["spec_diff"])
    assert {"train_loss", "val_loss"} <= {row["metric"] for row in twin["comparison"]["metrics"]}


def test_runs_without_a_choice_offer_the_picker(portal):
    page = portal.browser().get("/runs")
    assert page.status_code == 200
    assert f'value="{portal.jobs["good"]}"' in page.text and 'id="compare-runs"' in page.text
    assert portal.jobs["other"] not in page.text  # team-b's run is not offered to team-a
    assert portal.browser().get("/runs.json").json()["comparison"] is None


def test_another_teams_run_is_not_found(portal):
    other = portal.jobs["other"]
    page = portal.browser().get(f"/runs?job_id={portal.jobs['good']}&job_id={other}")
    assert page.status_code == 404 and other in page.text  # the API's "no job" message
    assert portal.browser().get(f"/jobs/{other}/report").status_code == 404
    assert portal.browser().get(f"/jobs/{other}/report.json").status_code == 404
    assert portal.browser("admin").get(f"/jobs/{other}/report.json").status_code == 200  # the admin sees all


def test_report_shows_gate_forgetting_and_spectrum(portal):
    job = portal.jobs["good"]
    page = portal.browser().get(f"/jobs/{job}/report")
    assert page.status_code == 200, page.text
    assert 'id="gate-verdict"><span class="badge passed">' in page.text
    assert "exact_match" in page.text and "Forgetting check" in page.text and "general ability held" in page.text
    assert 'id="spectrum-t"' in page.text  # the adapter spectrum chart
    picker = portal.browser().get(f"/runs?job_id={job}").text  # the report's "compare with other runs"
    assert f'href="/runs?job_id={job}"' in page.text and f'id="run-{job}" checked' in picker
    twin = portal.browser().get(f"/jobs/{job}/report.json").json()
    assert twin["run"]["gate"]["passed"] is True
    assert twin["run"]["eval"]["forgetting"]["ppl_increase"] == 0.05
    assert twin["run"]["eval"]["spectrum"]["modules"]


def test_report_of_a_failed_gate_and_of_a_failed_job(portal):
    weak = portal.browser().get(f"/jobs/{portal.jobs['weak']}/report")
    assert '<span class="badge failed">failed</span>' in weak.text and "&gt;= 0.8" in weak.text
    broken = portal.browser().get(f"/jobs/{portal.jobs['broken']}/report")
    assert broken.status_code == 200 and "No evaluation report" in broken.text
