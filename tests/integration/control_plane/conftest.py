"""One real control-plane server per test module: uvicorn on a free port, SQLite in a temp workspace."""

from __future__ import annotations

import pytest

from tests.control_plane_support import LiveServer, cpu_pool, make_key


def server_config(home, tiny_model_dir, **config) -> dict:
    return {"workspace": str(home), "models": {"tiny": str(tiny_model_dir)}, "tick_seconds": 0.2,
            "jobs": {"checkpoint_every_steps": 2, "retry_backoff_seconds": 0.5, "stop_grace_seconds": 120},
            "scheduling": cpu_pool(1), **config}


def start_server(tmp_path_factory, tiny_model_dir, *, name: str, **config):
    """The app `tunewise server` runs, on a fresh workspace (not started: see LiveServer)."""
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    home = tmp_path_factory.mktemp(name)
    return create_app(ServerConfig.model_validate(server_config(home, tiny_model_dir, **config))), home


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir):
    """A running server with keys for two teams and the admin."""
    app, home = start_server(tmp_path_factory, tiny_model_dir, name="server")
    with LiveServer(app) as server:
        server.keys = {"team-a": make_key(app, "team-a"), "team-b": make_key(app, "team-b"),
                       "admin": make_key(app, "", admin=True)}
        server.home, server.app = home, app
        yield server
