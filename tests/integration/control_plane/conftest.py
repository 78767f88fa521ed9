"""One real control-plane server per test module: uvicorn on a free port, SQLite in a temp workspace."""

from __future__ import annotations

import pytest

from tests.control_plane_support import LiveServer, StandInPolicy, make_key


def start_server(tmp_path_factory, tiny_model_dir, *, name: str, cpu_slots: int = 1, **config):
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    home = tmp_path_factory.mktemp(name)
    cfg = ServerConfig.model_validate({
        "workspace": str(home), "models": {"tiny": str(tiny_model_dir)}, "tick_seconds": 0.2,
        "jobs": {"checkpoint_every_steps": 2, "retry_backoff_seconds": 0.5, "stop_grace_seconds": 120},
        **config})
    app = create_app(cfg, policy=StandInPolicy(cpu_slots=cpu_slots))
    return app, home


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir):
    """A running server with keys for two teams and the admin."""
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="server")
    with LiveServer(app) as server:
        server.keys = {"team-a": make_key(app, "team-a"), "team-b": make_key(app, "team-b"),
                       "admin": make_key(app, "", admin=True)}
        server.home, server.app = home, app
        yield server
