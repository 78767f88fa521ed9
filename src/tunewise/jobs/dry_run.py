"""A dry run: everything a submission would check and plan, with nothing queued or spent.

The validation report and token counts (with the base model's tokenizer), the spec with the
method's defaults resolved, the planner's memory/time/cost per mode, the job's demand, and where
the scheduler would place it in the queue right now (the pure scheduler run on the current state
with this job added).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from tunewise.jobs.cluster import cluster_state, demand_to_json
from tunewise.jobs.keys import Principal
from tunewise.jobs.native import NativeJobRequest, native_submission
from tunewise.jobs.openai_request import resolved_hyperparameters
from tunewise.jobs.policy import SchedulingPolicy
from tunewise.jobs.schedule_types import ClusterState, Demand, WaitingJob
from tunewise.jobs.spec_guard import validate_spec
from tunewise.jobs.submit import JobFactory
from tunewise.jobs.validation import check_job_data

log = logging.getLogger("tunewise.jobs")
DRY_RUN_ID = "ftjob-dryrun00000000"


def dry_run(session: Session, factory: JobFactory, policy: SchedulingPolicy, request: NativeJobRequest,
            who: Principal, *, min_examples: int) -> dict[str, Any]:
    from tunewise.spec import spec_warnings
    from tunewise.train.run import resolved_spec

    sub = native_submission(request, who, factory.settings.models)
    guard = factory.guard(session, sub.team)
    guarded = guard.apply({**sub.spec, "name": DRY_RUN_ID, "base_model": sub.model}, prefix="spec")
    spec = validate_spec(guarded)
    _, priority = factory.priority(sub.priority_class, "priority")
    pool = factory.pool(sub.pool, "pool")
    spec_dict = spec.model_dump(mode="json", exclude_unset=True)
    check = check_job_data(spec_dict, DRY_RUN_ID, _labels(session, factory, guard), min_examples=min_examples)
    resolved = resolved_spec(spec) if not spec.stages else spec
    lr = spec.resolved_learning_rate()
    out: dict[str, Any] = {
        "ok": check.ok, "error": None if check.ok else {"code": check.code, "message": check.message,
                                                        "param": check.param},
        "validation": check.reports, "examples": check.examples, "tokens": check.tokens,
        "resolved": resolved.model_dump(mode="json"),
        "hyperparameters": resolved_hyperparameters(resolved.model_dump(mode="json"), None, lr),
        "plan": _plan(spec, check.tokens, policy, pool),
        "warnings": spec_warnings(spec),
    }
    demand = policy.demand(spec_dict, pool, tokens=check.tokens, examples=check.examples)
    out["demand"] = demand_to_json(demand)
    out.update(_queue_estimate(session, policy, sub.team, pool, priority, demand, preemptible=sub.preemptible))
    return out


def _labels(session: Session, factory: JobFactory, guard: Any) -> dict[str, tuple[str, str]]:
    from tunewise.jobs.files import stored_paths

    rows = stored_paths(session, factory.blobs, factory.settings.scratch / "files", guard.file_ids)
    return {path: (row.id, row.filename) for path, row in rows.items()}


def _plan(spec: Any, tokens: int, policy: SchedulingPolicy, pool: str) -> dict[str, Any] | None:
    from tunewise.plan import plan

    gpu_type = next((g.type for p in policy.pools if p.name == pool for n in p.nodes for g in n.gpus), None)
    try:
        report = plan(model=spec.base_model, tokens=max(tokens, 1), gpu=gpu_type or "cpu",
                      seq_len=spec.data.max_length if spec.data else 1024, micro_batch=spec.train.micro_batch_size,
                      epochs=spec.train.epochs)
        return report.to_json()
    except Exception as err:  # the plan is advice; a model the planner cannot size leaves it out
        log.info("dry run: no plan (%s)", err)
        return {"error": str(err).splitlines()[0] if str(err) else type(err).__name__}


def _queue_estimate(session: Session, policy: SchedulingPolicy, team: str, pool: str, priority: int,
                    demand: Demand, *, preemptible: bool) -> dict[str, Any]:
    import time

    state = cluster_state(session, policy.pools, policy.quotas)
    probe = WaitingJob(id=DRY_RUN_ID, team=team, pool=pool, priority=priority, submitted_at=time.time(),
                       demand=demand, preemptible=preemptible)
    decisions = policy.schedule(ClusterState(pools=state.pools, running=state.running,
                                             waiting=(*state.waiting, probe), quotas=state.quotas, now=state.now))
    if any(a.job_id == DRY_RUN_ID for a in decisions.admit):
        return {"queue": {"position": 0, "reason": None, "detail": "would start now", "estimated_start": state.now},
                "would_start_now": True}
    wait = next((w for w in decisions.wait if w.job_id == DRY_RUN_ID), None)
    if wait is None:
        return {"queue": None, "would_start_now": False}
    return {"queue": {"position": wait.position, "reason": wait.reason, "detail": wait.detail,
                      "estimated_start": wait.estimated_start}, "would_start_now": False}
