"""Helpers for control-plane tests: a stand-in scheduling policy, a real server on a free port, keys.

The stand-in policy is a plain FIFO-by-priority over CPU slots with priority preemption. It is a
test double only: the server runs `tunewise.jobs.scheduler`; these tests check what the server does
with decisions (start, stop and requeue, store reasons), not the policy itself.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tunewise.jobs.schedule_types import (
    Admit,
    ClusterState,
    Decisions,
    Demand,
    Node,
    Placement,
    Pool,
    Preempt,
    Quota,
    Slot,
    Wait,
)


@dataclass
class StandInPolicy:
    cpu_slots: int = 1
    pools: tuple[Pool, ...] = ()
    quotas: tuple[Quota, ...] = ()
    priority_classes: dict[str, int] = field(default_factory=lambda: {"low": -10, "normal": 0, "high": 10})
    default_priority_class: str = "normal"

    def __post_init__(self):
        if not self.pools:
            self.pools = (Pool("default", (Node("local", cpu_slots=self.cpu_slots),)),)

    def demand(self, spec: dict[str, Any], pool: str, **_: Any) -> Demand:
        return Demand(cpu_slots=1)

    def schedule(self, state: ClusterState) -> Decisions:
        used = sum(s.cpu_slots for r in state.running for s in r.placement.slots)
        free = self.cpu_slots - used
        stopping = sum(1 for r in state.running if r.stopping)
        admits, preempts, waits = [], [], []
        victims = sorted((r for r in state.running if r.preemptible and not r.stopping),
                         key=lambda r: (r.priority, -r.started_at))
        queue = sorted(state.waiting, key=lambda w: (-w.priority, w.submitted_at))
        for position, job in enumerate(queue, start=1):
            if free >= 1:
                free -= 1
                admits.append(Admit(job.id, Placement((Slot(node="local", cpu_slots=1),))))
                continue
            victim = next((v for v in victims if v.priority < job.priority), None)
            if victim is not None and stopping == 0:
                victims.remove(victim)
                preempts.append(Preempt(victim.id, job.id, "priority"))
                waits.append(Wait(job.id, position - len(admits), "priority", "waiting for a preempted job to stop"))
                stopping += 1
                continue
            waits.append(Wait(job.id, position - len(admits), "capacity",
                              f"all {self.cpu_slots} CPU slots are in use"))
        return Decisions(admit=tuple(admits), preempt=tuple(preempts), wait=tuple(waits))


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
