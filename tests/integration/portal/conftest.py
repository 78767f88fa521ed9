"""One control-plane app per module with the portal: SQLite in a temp workspace, the tiny model, keys for two
teams and the admin."""

from __future__ import annotations

import pytest

from tests.control_plane_support import blocked_pool
from tests.integration.control_plane.conftest import start_server
from tests.portal_support import team_keys


@pytest.fixture(scope="module")
def portal_app(tmp_path_factory, tiny_model_dir):
    """The app on a pool no job of these teams can start on (every job waits for quota): the pages see
    queued jobs with their reasons, and nothing trains."""
    from fastapi.testclient import TestClient

    app, home = start_server(tmp_path_factory, tiny_model_dir, name="portal", scheduling=blocked_pool())
    app.state.keys, app.state.home = team_keys(app), home
    with TestClient(app):  # runs the lifespan: the scheduling loop validates and queues submitted jobs
        yield app
