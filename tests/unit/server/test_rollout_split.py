"""A trigger's rollout: register, then split the name's traffic between production and the new version."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunewise.jobs.triggers import roll_out


def test_rollout_reports_each_step_and_a_failed_split_does_not_fail_the_job(monkeypatch, tmp_path):
    import tunewise.jobs.triggers as triggers

    monkeypatch.setattr(triggers, "_register_and_promote", lambda settings, job, plan: {
        "status": "registered", "model": plan["register_as"], "version": "4", "message": "registered as bot version 4"})
    settings = SimpleNamespace(home=tmp_path)
    plan = {"register_as": "bot", "traffic_percent": 10}
    calls = []
    out = roll_out(settings, None, plan, lambda name, version, percent: calls.append((name, version, percent)) or "ok")
    assert calls == [("bot", "4", 10)] and out["message"] == "registered as bot version 4; ok"
    out = roll_out(settings, None, plan, None)
    assert "serving is not mounted" in out["message"] and out["status"] == "registered"

    def broken(*args):
        raise RuntimeError("no production version")

    assert "traffic split failed: no production version" in roll_out(settings, None, plan, broken)["message"]
    assert roll_out(settings, None, {}, None)["status"] == "none"


def test_traffic_split_routes_production_and_the_new_version(monkeypatch, tmp_path):
    pytest.importorskip("tunewise.serve.ab", reason="serving (tunewise.serve) is not installed in this build")
    import tunewise.registry

    from tunewise.server.serving import traffic_split

    monkeypatch.setattr(tunewise.registry, "get_version", lambda name, ref: SimpleNamespace(version="3"), raising=False)
    routes = []
    engine = SimpleNamespace(set_route=routes.append)
    ctx = SimpleNamespace(settings=SimpleNamespace(home=tmp_path))
    message = traffic_split(ctx, engine)("bot", "4", 10.0)
    assert message == "route bot: bot:3 90%, bot:4 10%"
    assert [(v.model, v.weight) for v in routes[0].variants] == [("bot:3", 90.0), ("bot:4", 10.0)]


def test_a_rollout_claims_a_new_name_for_its_team_and_cannot_take_another_teams(monkeypatch, tmp_path):
    import tunewise.jobs.triggers as triggers
    from sqlalchemy import select

    from tunewise.jobs.store.db import Database
    from tunewise.jobs.store.models import RegisteredModel

    monkeypatch.setattr(triggers, "_register_and_promote", lambda settings, job, plan: {
        "status": "registered", "model": plan["register_as"], "version": "1", "message": "registered"})
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    settings = SimpleNamespace(home=tmp_path)
    with db.session() as session:
        out = triggers._owned_roll_out(session, settings, SimpleNamespace(team="team-a"), {"register_as": "bot"}, None)
        assert out["status"] == "registered"
    with db.session() as session:
        assert session.scalar(select(RegisteredModel.team).where(RegisteredModel.name == "bot")) == "team-a"
        out = triggers._owned_roll_out(session, settings, SimpleNamespace(team="team-b"), {"register_as": "bot"}, None)
        assert out == {"status": "failed", "message": "rollout failed: the registered name 'bot' belongs to another team"}
        assert triggers._owned_roll_out(session, settings, SimpleNamespace(team="team-a"), {"register_as": "bot"},
                                        None)["status"] == "registered"
    db.close()
