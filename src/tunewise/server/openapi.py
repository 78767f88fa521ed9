"""The OpenAPI schema says what the server really answers: OpenAI-style error bodies on every route.

Validation problems are answered 400 (as OpenAI does), not FastAPI's 422, so 422 is dropped from
the schema and every operation lists the error statuses it can return with `ErrorResponse`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tunewise.openai_api.errors import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request: `param` names the field."},
    401: {"model": ErrorResponse, "description": "Missing, wrong or revoked API key."},
    403: {"model": ErrorResponse, "description": "The key may not do this (admin routes, other teams)."},
    404: {"model": ErrorResponse, "description": "No such object for this team."},
    409: {"model": ErrorResponse, "description": "The object's state does not allow this."},
    413: {"model": ErrorResponse, "description": "Request body over the size limit."},
}


def install_openapi(app: FastAPI) -> None:
    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in spec.get("paths", {}).values():
                for operation in path.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                spec.get("components", {}).get("schemas", {}).pop(name, None)
            spec["components"].setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
            spec["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = schema
