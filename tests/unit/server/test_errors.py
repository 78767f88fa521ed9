"""OpenAI-style error bodies from every failure path of a tunewise HTTP app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from tunewise.openai_api.errors import bad_request, not_found
from tunewise.server.errors import BodySizeLimit, install_error_handlers


class Echo(BaseModel):
    text: str
    count: int = Field(1, ge=1)


def _app(max_bytes: int = 10_000) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    def echo(body: Echo) -> dict:
        return body.model_dump()

    @app.get("/missing")
    def missing() -> dict:
        raise not_found("model 'x' does not exist", param="model", code="model_not_found")

    @app.get("/bad")
    def bad() -> dict:
        raise bad_request("temperature must be between 0 and 2", param="temperature")

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("kaput")

    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    return TestClient(app, raise_server_exceptions=False)


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_api_errors_keep_status_param_and_code():
    client = _app()
    missing = client.get("/missing")
    assert missing.status_code == 404
    assert _error(missing) == {"message": "model 'x' does not exist", "type": "invalid_request_error",
                               "param": "model", "code": "model_not_found"}
    bad = client.get("/bad")
    assert bad.status_code == 400 and _error(bad)["param"] == "temperature"


def test_validation_errors_are_400_naming_the_field():
    response = _app().post("/echo", json={"text": "hi", "count": 0})
    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == "count" and error["message"].startswith("count: ")


def test_unknown_route_and_method_and_crash():
    client = _app()
    assert client.get("/nope").status_code == 404 and _error(client.get("/nope"))["code"] == "unknown_url"
    assert client.get("/echo").status_code == 405
    crash = client.get("/boom")
    assert crash.status_code == 500 and _error(crash)["type"] == "server_error"
    assert client.post("/echo", json={"text": "still serving"}).status_code == 200


def test_oversized_bodies_are_refused_with_413():
    client = _app(max_bytes=100)
    response = client.post("/echo", json={"text": "x" * 500})
    assert response.status_code == 413 and _error(response)["code"] == "request_too_large"
    assert client.post("/echo", json={"text": "small"}).status_code == 200
