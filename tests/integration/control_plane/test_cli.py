"""`tunewise jobs` and `tunewise keys` against a real server (its quota is another team's: jobs wait, saying why)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tests.control_plane_support import LiveServer, blocked_pool, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server


@pytest.fixture(scope="module")
def busy(tmp_path_factory, tiny_model_dir):
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="cli", scheduling=blocked_pool())
    with LiveServer(app) as server:
        server.home = home
        server.key = make_key(app, "team-cli")
        yield server


def run(busy, monkeypatch, *args: str):
    from tunewise.cli import app

    monkeypatch.setenv("TUNEWISE_SERVER", busy.url)
    monkeypatch.setenv("TUNEWISE_API_KEY", busy.key)
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result


def test_submit_list_show_cancel(busy, monkeypatch, tmp_path):
    write_chat_dataset(tmp_path / "train.jsonl", rows=20)
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"base_model": "tiny", "method": "lora", "data": {"train": "train.jsonl"},
                                    "train": {"max_steps": 2}}))
    dry = run(busy, monkeypatch, "jobs", "submit", str(spec), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output[dry.output.index("{"):])
    assert report["ok"] and report["examples"] == 20 and report["tokens"] > 0
    assert report["queue"]["position"] == 1 and report["queue"]["reason"] == "quota"
    assert {m["mode"] for m in report["plan"]["modes"]} >= {"lora", "full"}

    submitted = run(busy, monkeypatch, "jobs", "submit", str(spec), "--json")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.output[submitted.output.index("{"):])
    wait_for(lambda: json.loads(run(busy, monkeypatch, "jobs", "show", job["id"], "--json").output)["queue"]
             ["position"], 120, what="a queue position")
    listing = json.loads(run(busy, monkeypatch, "jobs", "list", "--json").output)
    assert listing[0]["id"] == job["id"] and listing[0]["queue"]["reason"] == "quota"
    table = run(busy, monkeypatch, "jobs", "list").output
    assert "queued" in table and "quota" in table
    shown = run(busy, monkeypatch, "jobs", "show", job["id"])
    assert "Files validated, moving job to queued state" in shown.output and "#1: quota" in shown.output
    cancelled = run(busy, monkeypatch, "jobs", "cancel", job["id"])
    assert f"{job['id']}: cancelled" in cancelled.output
    logs = run(busy, monkeypatch, "jobs", "logs", job["id"], "--follow")
    assert logs.exit_code == 0


def test_unknown_job_and_missing_key_are_one_line_errors(busy, monkeypatch, capsys):
    from tunewise.cli import main

    monkeypatch.setenv("TUNEWISE_API_KEY", busy.key)
    with pytest.raises(SystemExit) as exit_:
        main(["jobs", "show", "ftjob-doesnotexist0000", "--server", busy.url])
    assert exit_.value.code == 2
    assert "Could not find fine-tune: ftjob-doesnotexist0000 (HTTP 404)" in " ".join(capsys.readouterr().err.split())
    monkeypatch.delenv("TUNEWISE_API_KEY")
    with pytest.raises(SystemExit) as exit_:
        main(["jobs", "list", "--server", busy.url])
    assert exit_.value.code == 2 and "TUNEWISE_API_KEY" in capsys.readouterr().err


def test_keys_create_list_revoke(busy, monkeypatch, tmp_path, capsys):
    from tunewise.cli import main

    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump({"workspace": str(busy.home)}))
    with pytest.raises(SystemExit):
        main(["keys", "create", "--team", "team-new", "--config", str(config)])
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("twk_")
    import httpx

    assert httpx.get(f"{busy.url}/api/me", headers={"authorization": f"Bearer {key}"}).json()["team"] == "team-new"
    with pytest.raises(SystemExit):
        main(["keys", "list", "--json", "--config", str(config)])
    rows = json.loads(capsys.readouterr().out)
    mine = next(r for r in rows if r["team"] == "team-new")
    assert key.startswith(mine["prefix"]) and key not in json.dumps(rows)
    with pytest.raises(SystemExit):
        main(["keys", "revoke", mine["id"], "--config", str(config)])
    assert httpx.get(f"{busy.url}/api/me", headers={"authorization": f"Bearer {key}"}).status_code == 401
