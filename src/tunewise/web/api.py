"""The portal's only way to the data: the server's own REST API, called in-process for one browser request.

Every page is a client of the same routes the CLI and the `openai` client use. The call runs through
the whole ASGI app (authentication, validation, error shapes) over an in-memory transport, carrying
the browser's session cookie and, for state changes, the CSRF token the browser's form sent: the API
checks both, so the pages cannot do what the signed-in team could not do through the API.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

from tunewise.server.auth import CSRF_HEADER, SESSION_COOKIE

INTERNAL_BASE = "http://tunewise.internal"
TIMEOUT_S = 600.0  # a dry run tokenizes the whole dataset; a chat answer may be long


class APIFailure(Exception):
    """The API refused a request: its status and the OpenAI-style error's message and param."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class PortalAPI:
    """Calls to the REST API as the browser's session (see the module docstring)."""

    def __init__(self, request: Request, *, csrf: str | None = None, bearer: str | None = None):
        self.request = request
        self.csrf = csrf
        self.bearer = bearer  # only for signing in: the key typed into the form, used once
        self.last_response: httpx.Response | None = None

    def _client(self) -> httpx.AsyncClient:
        # A fresh client per call: its cookie jar must never carry one browser's session to another's request.
        token = self.request.cookies.get(SESSION_COOKIE)
        cookies = {SESSION_COOKIE: token} if token and not self.bearer else None
        headers = {"authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        if self.csrf:
            headers[CSRF_HEADER] = self.csrf
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.request.app), base_url=INTERNAL_BASE,
                                 cookies=cookies, headers=headers, timeout=TIMEOUT_S)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._client() as client:
            response = await client.request(method, path, **kwargs)
        self.last_response = response
        if response.status_code >= 400:
            raise _failure(response)
        return response

    async def with_session_csrf(self) -> PortalAPI:
        """Carry this session's own CSRF token, for read-only POSTs made on a GET (YAML, planner, dry run)."""
        self.csrf = (await self.get("/api/session")).get("csrf_token")
        return self

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params={k: v for k, v in params.items() if v is not None})).json()

    async def text(self, path: str, **params: Any) -> str:
        return (await self.call("GET", path, params={k: v for k, v in params.items() if v is not None})).text

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        response = await self.call("POST", path, json=json, **kwargs)
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    async def send(self, method: str, path: str, json: Any = None) -> Any:
        return (await self.call(method, path, json=json)).json()


def _failure(response: httpx.Response) -> APIFailure:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = error.get("message") or response.text[:300] or f"HTTP {response.status_code}"
    return APIFailure(response.status_code, message, error.get("param"), error.get("code"))
