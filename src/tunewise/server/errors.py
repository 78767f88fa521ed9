"""Every error a tunewise HTTP app answers is an OpenAI-style body with the matching status.

`install_error_handlers(app)` covers our own `APIError`, request validation (400 naming the field
in `param`), unknown routes and methods (404/405), and anything unexpected (500, logged with its
traceback; the server keeps serving). `BodySizeLimit` refuses oversized requests before they are read.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunewise.openai_api.errors import APIError

log = logging.getLogger("tunewise.server")


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    # FastAPI prefixes the location with where it came from ("body", "query", ...): drop it.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form", "cookie")]
    return ".".join(parts)


def validation_error(err: RequestValidationError) -> APIError:
    """The first problem of a request that does not validate, as a 400 naming its field."""
    problems = err.errors()
    if not problems:
        return APIError(400, "invalid request")
    first = problems[0]
    field = _field_path(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    text = f"{field}: {message}{more}" if field else f"{message}{more}"
    return APIError(400, text, param=field or None, code="invalid_value" if field else "invalid_request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            return error_response(APIError(404, "no such route", code="unknown_url"))
        if err.status_code == 405:
            return error_response(APIError(405, "method not allowed on this route", code="method_not_allowed"))
        return error_response(APIError(err.status_code, str(err.detail), headers=dict(err.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(APIError(500, f"internal error ({type(err).__name__}); the server keeps serving",
                                       code="internal_error"))


class BodySizeLimit:
    """ASGI middleware: a request whose body exceeds `max_bytes` gets a 413 before the route reads it.

    Checks Content-Length up front and counts streamed bytes too (chunked uploads carry no length).
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            if refused:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        err = APIError(413, f"request body larger than the limit of {self.max_bytes} bytes",
                       code="request_too_large")
        response = error_response(err)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass
