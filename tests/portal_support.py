"""Helpers for portal tests: signing a client in through the sign-in form, the page's CSRF token, datasets
with broken rows."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from tests.control_plane_support import make_key
from tests.helpers import write_chat_dataset

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


def sign_in(client, key: str, next_path: str = "/"):
    """Sign `client` (a TestClient) in with `key` through the form; returns the redirect response."""
    form = client.get("/signin")
    token = FORM_TOKEN.search(form.text).group(1)
    return client.post("/signin", data={"csrf_token": token, "api_key": key, "next": next_path},
                       follow_redirects=False)


def csrf_of(page_html: str) -> str:
    return CSRF_META.search(page_html).group(1)


def hidden_value(page_html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page_html)
    assert match, f"no hidden field {name} on the page"
    return html.unescape(match.group(1))


def broken_dataset(path: Path, rows: int = 24) -> Path:
    """A chat dataset whose lines 5 and 10 cannot be used (wrong type, not JSON)."""
    lines = write_chat_dataset(path, rows=rows).read_text().splitlines()
    lines[4] = json.dumps({"messages": 3})
    lines[9] = "this line is not JSON"
    path.write_text("\n".join(lines) + "\n")
    return path


def team_keys(app) -> dict[str, str]:
    """Keys for the two teams the portal tests use and for the admin."""
    return {"team-a": make_key(app, "team-a"), "team-b": make_key(app, "team-b"),
            "admin": make_key(app, "", admin=True)}
