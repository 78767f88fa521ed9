"""The operator's view (admin): every device of every pool with what holds it, each team's quota against
its use, and the jobs that failed lately with their reasons.

Usage comes from the placements the scheduler gave running jobs (the store), counted the way quotas
count it (`quotas.placement_usage`: a 20 GiB share of an 80 GiB card is a quarter of a GPU).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs.cluster import placement_from_json
from tunewise.jobs.ledger import PoolIndex
from tunewise.jobs.policy import SchedulingPolicy
from tunewise.jobs.quotas import Usage, placement_usage
from tunewise.jobs.schedule_types import Node
from tunewise.jobs.store.models import Job

RECENT_FAILURES = 20


def _holders(jobs: list[Job]) -> dict[tuple, list[dict[str, Any]]]:
    """Device key -> the running jobs holding it, with what each holds."""
    held: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        for slot in placement_from_json(job.placement).slots:
            who = {"job": job.id, "team": job.team, "memory_gib": slot.memory_gib, "cpu_slots": slot.cpu_slots}
            if slot.gpu is None:
                held[(job.pool, slot.node, "cpu")].append(who)
            elif slot.mig_slice is not None:
                held[(job.pool, slot.node, "mig", slot.mig_slice)].append(who)
            else:
                held[(job.pool, slot.node, "gpu", slot.gpu)].append(who)
    return held


def _node_view(pool: str, node: Node, held: dict[tuple, list[dict[str, Any]]]) -> dict[str, Any]:
    gpus = []
    for gpu in node.gpus:
        if gpu.mig_slices:
            slices = [{**asdict(mig), "jobs": held.get((pool, node.name, "mig", mig.name), [])}
                      for mig in gpu.mig_slices]
            gpus.append({"index": gpu.index, "type": gpu.type, "memory_gib": gpu.memory_gib, "mig_slices": slices,
                         "used_gib": sum(s["memory_gib"] for s in slices if s["jobs"]), "jobs": []})
        else:
            jobs = held.get((pool, node.name, "gpu", gpu.index), [])
            gpus.append({"index": gpu.index, "type": gpu.type, "memory_gib": gpu.memory_gib, "mig_slices": [],
                         "used_gib": min(gpu.memory_gib, sum(j["memory_gib"] for j in jobs)), "jobs": jobs})
    cpu_jobs = held.get((pool, node.name, "cpu"), [])
    return {"name": node.name, "gpus": gpus, "cpu_slots": node.cpu_slots,
            "cpu_slots_used": sum(j["cpu_slots"] for j in cpu_jobs), "cpu_jobs": cpu_jobs}


def ops_view(session: Session, policy: SchedulingPolicy) -> dict[str, Any]:
    """Pools (per node, GPU and MIG slice), quotas with usage per team, recent failures."""
    running = list(session.scalars(select(Job).where(Job.status == "running", Job.placement.is_not(None))))
    held = _holders(running)
    pools = [{"name": p.name, "nodes": [_node_view(p.name, n, held) for n in p.nodes]} for p in policy.pools]
    indexes = {p.name: PoolIndex(p) for p in policy.pools}
    used: dict[str, Usage] = defaultdict(Usage)
    for job in running:
        used[job.team] = used[job.team] + placement_usage(placement_from_json(job.placement), indexes.get(job.pool))
    teams = sorted({q.team for q in policy.quotas} | set(used))
    quota_by_team = {q.team: q for q in policy.quotas}
    quotas = []
    for team in teams:
        quota = quota_by_team.get(team)
        quotas.append({"team": team, "quota": asdict(quota) if quota else None,
                       "running": sum(1 for j in running if j.team == team),
                       "used_gpus": round(used[team].gpus, 3), "used_gpu_memory_gib": round(used[team].gpu_memory_gib, 2)})
    failed = session.scalars(select(Job).where(Job.status == "failed").order_by(Job.seq.desc()).limit(RECENT_FAILURES))
    failures = [{"id": j.id, "team": j.team, "model": j.model, "finished_at": j.finished_at, "error": j.error}
                for j in failed]
    return {"object": "tunewise.ops", "pools": pools, "quotas": quotas, "recent_failures": failures}
