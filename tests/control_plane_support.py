"""Helpers for control-plane tests: scheduling configs, a real server on a free port, keys.

The servers run the real scheduler (`tunewise.jobs.scheduler`) on a declared pool: CPU slots for
jobs that train, or a GPU pool whose quota belongs to another team for jobs that must stay queued.
"""

from __future__ import annotations

import socket
import threading
import time


def cpu_pool(slots: int = 1) -> dict:
    """One node with `slots` CPU training slots; preemption as soon as a higher class waits."""
    return {"pools": [{"name": "default", "nodes": [{"name": "local", "cpu_slots": slots}]}],
            "preemption_grace_minutes": 0}


def blocked_pool() -> dict:
    """A one-GPU pool whose whole quota belongs to a team that lends none: every job waits (quota)."""
    return {"pools": [{"name": "gpu", "nodes": [{"name": "node", "gpus": [{"type": "h100-80gb", "count": 1}]}]}],
            "quotas": [{"team": "reserved", "gpus": 1, "can_lend": False}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on a free port, in a thread, for the official client to talk to."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def make_key(app_or_db, team: str, *, admin: bool = False) -> str:
    """A new key for `team` in the store of an app (or a `Database`)."""
    from tunewise.jobs.keys import create_key

    db = app_or_db.state.ctx.db if hasattr(app_or_db, "state") else app_or_db
    with db.session() as session:
        return create_key(session, team, admin=admin).key


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
