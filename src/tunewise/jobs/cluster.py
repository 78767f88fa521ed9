"""Between the store and the scheduler: the `ClusterState` built from jobs, the `Decisions` carried out.

The scheduler (`tunewise.jobs.scheduler.schedule`) is a pure function; this module does the I/O
around it: waiting and running jobs read from the store, admitted jobs started on their placement,
preempted jobs asked to checkpoint and stop (they are requeued when they exit), and each waiting
job's queue position and reason stored for the API.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs.executors.base import attempt_started
from tunewise.jobs.schedule_types import (
    Admit,
    ClusterState,
    Demand,
    Placement,
    Pool,
    Preempt,
    Quota,
    RunningJob,
    Slot,
    Wait,
    WaitingJob,
)
from tunewise.jobs.store.models import Job


def demand_to_json(demand: Demand) -> dict[str, Any]:
    return asdict(demand)


def demand_from_json(data: dict[str, Any] | None, *, done_steps: int | None = None,
                     total_steps: int | None = None) -> Demand:
    """The stored demand; with progress, its time estimate covers only the steps left."""
    demand = Demand(**(data or {}))
    if demand.estimated_seconds and done_steps and total_steps:
        left = max(0.0, 1.0 - done_steps / total_steps)
        demand = dataclasses.replace(demand, estimated_seconds=demand.estimated_seconds * left)
    return demand


def placement_to_json(placement: Placement) -> dict[str, Any]:
    return {"slots": [asdict(slot) for slot in placement.slots]}


def placement_from_json(data: dict[str, Any] | None) -> Placement:
    return Placement(tuple(Slot(**slot) for slot in (data or {}).get("slots", [])))


def cluster_state(session: Session, pools: tuple[Pool, ...], quotas: tuple[Quota, ...], now: float | None = None
                  ) -> ClusterState:
    """The scheduler's view of the store: what runs where, and what waits (jobs in retry backoff do not)."""
    now = time.time() if now is None else now
    running, waiting = [], []
    for job in session.scalars(select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.seq)):
        # A queued job with a started attempt waits in a cluster's own queue (Kueue, Volcano): it holds
        # the placement it was given, and is not scheduled again.
        if (job.status == "running" or attempt_started(job.handle)) and job.placement is not None:
            # The attempt's start: a resumed job's estimate is of what was left when it restarted.
            handle = job.handle or {}
            started = handle.get("started_at") or job.started_at or now
            demand = demand_from_json(job.demand, done_steps=handle.get("start_step"), total_steps=job.total_steps)
            running.append(RunningJob(id=job.id, team=job.team, pool=job.pool, priority=job.priority,
                                      started_at=started, demand=demand,
                                      placement=placement_from_json(job.placement), preemptible=job.preemptible,
                                      stopping=job.stop_requested is not None))
        elif job.status == "queued" and (job.not_before is None or job.not_before <= now):
            waiting.append(WaitingJob(id=job.id, team=job.team, pool=job.pool, priority=job.priority,
                                      submitted_at=job.queued_at or job.created_at,
                                      demand=demand_from_json(job.demand, done_steps=job.step,
                                                              total_steps=job.total_steps),
                                      preemptible=job.preemptible, preempted_for=job.preempted_for))
    return ClusterState(pools=pools, running=tuple(running), waiting=tuple(waiting), quotas=quotas, now=now)


def describe_placement(placement: Placement) -> str:
    """'node1 GPU 0 (40 GiB), node1 GPU 1' or 'node1: 1 CPU slot', for events."""
    parts = []
    for slot in placement.slots:
        if slot.gpu is None:
            parts.append(f"{slot.node}: {slot.cpu_slots} CPU slot{'s' if slot.cpu_slots != 1 else ''}")
        elif slot.mig_slice:
            parts.append(f"{slot.node} MIG {slot.mig_slice}")
        else:
            share = f" ({slot.memory_gib:g} GiB)" if slot.memory_gib else ""
            parts.append(f"{slot.node} GPU {slot.gpu}{share}")
    return ", ".join(parts) or "no devices"


def store_wait(job: Job, wait: Wait) -> None:
    job.queue_position = wait.position
    job.wait_reason = wait.reason
    job.wait_detail = wait.detail
    job.estimated_start = wait.estimated_start


def clear_wait(job: Job) -> None:
    job.queue_position = job.wait_reason = job.wait_detail = job.estimated_start = None


__all__ = ["Admit", "Preempt", "cluster_state", "clear_wait", "demand_from_json", "demand_to_json",
           "describe_placement", "placement_from_json", "placement_to_json", "store_wait"]
