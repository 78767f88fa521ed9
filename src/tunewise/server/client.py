"""A small HTTP client of the control plane's REST API, for the `tunewise jobs` commands.

The server is `--server`, else TUNEWISE_SERVER, else http://127.0.0.1:8000; the key is
TUNEWISE_API_KEY. Errors come back as TunewiseError with the server's message (OpenAI-style body).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tunewise.errors import TunewiseError

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ServerError(TunewiseError):
    """The server refused a request or could not be reached."""


class ControlPlaneClient:
    def __init__(self, server: str | None = None, api_key: str | None = None, timeout: float = 60.0):
        self.server = (server or os.environ.get("TUNEWISE_SERVER") or DEFAULT_SERVER).rstrip("/")
        key = api_key or os.environ.get("TUNEWISE_API_KEY")
        if not key:
            raise ServerError("no API key: set TUNEWISE_API_KEY", hint="an admin creates one with "
                              "`tunewise keys create --team TEAM`")
        self.http = httpx.Client(base_url=self.server, timeout=timeout, headers={"authorization": f"Bearer {key}"})

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            error = response.json().get("error", {})
            message = error.get("message") or response.text
        except ValueError:
            message = response.text[:300]
        raise ServerError(f"{self.server}: {message} (HTTP {response.status_code})")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ServerError(f"cannot reach the tunewise server at {self.server}: {err}",
                              hint="start one with `tunewise server`, or point --server / TUNEWISE_SERVER at it") from None
        return self._check(response).json()

    def upload(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise ServerError(f"{path}: data file not found")
        with path.open("rb") as fh:
            return self.request("POST", "/v1/files", files={"file": (path.name, fh)}, data={"purpose": "fine-tune"})

    def stream_logs(self, job_id: str, follow: bool) -> Iterator[bytes]:
        try:
            with self.http.stream("GET", f"/api/jobs/{job_id}/logs", params={"follow": str(follow).lower()},
                                  timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as err:
            raise ServerError(f"log stream from {self.server} broke: {err}") from None
