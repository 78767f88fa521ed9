"""The queue as a team sees it: every pool's devices, what runs and what waits (with place and reason).

Another team's jobs are shown without id or team: their place in the queue matters to you, their
identity does not.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs.policy import SchedulingPolicy
from tunewise.jobs.store.models import Job


def _entry(job: Job, scope: str | None) -> dict[str, Any]:
    own = scope is None or job.team == scope
    entry = {"id": job.id if own else None, "team": job.team if own else None, "own": own,
             "priority": job.priority_class, "status": job.status, "demand": job.demand}
    if job.status == "running":
        entry.update(placement=job.placement, borrowed=job.borrowed, step=job.step, total_steps=job.total_steps,
                     stopping=job.stop_requested)
    else:
        entry.update(position=job.queue_position, reason=job.wait_reason, detail=job.wait_detail,
                     estimated_start=job.estimated_start)
    return entry


def cluster_view(session: Session, policy: SchedulingPolicy, scope: str | None, models: list[str]) -> dict[str, Any]:
    jobs = list(session.scalars(select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.seq)))
    pools = []
    for pool in policy.pools:
        mine = [j for j in jobs if j.pool == pool.name]
        waiting = sorted((j for j in mine if j.status == "queued"), key=lambda j: (j.queue_position or 10**9, j.seq))
        pools.append({"name": pool.name, "nodes": [asdict(n) for n in pool.nodes],
                      "running": [_entry(j, scope) for j in mine if j.status == "running"],
                      "waiting": [_entry(j, scope) for j in waiting]})
    return {"pools": pools, "quotas": [asdict(q) for q in policy.quotas],
            "priority_classes": dict(policy.priority_classes), "default_priority_class": policy.default_priority_class,
            "models": models}
