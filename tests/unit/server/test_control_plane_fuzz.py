"""schemathesis over the control plane's OpenAPI schema: no 500s, responses as the schema says.

The app is built when the module is collected (schemathesis generates one test per operation from
it): a store in a temporary workspace, the default scheduling config, no scheduling loop.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.control_plane_support import make_key


def _app():
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    home = tempfile.mkdtemp(prefix="tunewise-fuzz-")
    app = create_app(ServerConfig(workspace=home), run_loop=False)
    app.state.fuzz_home = home
    app.state.key = make_key(app, "team-fuzz")
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _clean_up():
    yield
    APP.state.ctx.db.close()
    shutil.rmtree(APP.state.fuzz_home, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case):
    case.call_and_validate(headers={"authorization": f"Bearer {APP.state.key}"},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])
