"""Native API for runs side by side, resuming from a chosen checkpoint, and the operator's view."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from tunewise.jobs import actions
from tunewise.jobs.checkpoint_fork import fork_from_checkpoint
from tunewise.jobs.compare import MAX_RUNS, compare_runs
from tunewise.jobs.events import add_event, audit
from tunewise.jobs.files import stored_paths
from tunewise.jobs.keys import Principal
from tunewise.jobs.ops_view import ops_view
from tunewise.jobs.views import client_spec, native_job
from tunewise.openai_api.errors import bad_request
from tunewise.server.auth import admin, principal
from tunewise.server.context import ServerContext, context
from tunewise.server.native_shapes import NativeJob

router = APIRouter(prefix="/api", tags=["tunewise"])


def _paths(session, ctx: ServerContext, job) -> dict[str, str]:
    ids = [f for f in [job.training_file, job.validation_file, *(job.files or [])] if f]
    return {p: row.id for p, row in stored_paths(session, ctx.blobs, ctx.settings.scratch / "files", ids).items()}


@router.get("/runs/compare", summary="Runs side by side: loss curves, final metrics, where their specs differ")
def compare(job_id: list[str] = Query(..., max_length=MAX_RUNS, description=f"2 to {MAX_RUNS} job ids of yours."),
            who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    ids = list(dict.fromkeys(j for j in job_id if j))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise bad_request(f"job_id: give 2 to {MAX_RUNS} different jobs", param="job_id")
    with ctx.session() as session:
        jobs = [actions.get_job(session, j, who.scope()) for j in ids]
        pairs = [(job, client_spec(job, _paths(session, ctx, job))) for job in jobs]
    return compare_runs(ctx.settings, pairs)


@router.post("/jobs/{job_id}/checkpoints/{step}/resume", response_model=NativeJob,
             summary="A new job that resumes from this job's checkpoint at `step` (same spec and data)")
def resume_from_checkpoint(job_id: str, step: int, who: Principal = Depends(principal),
                           ctx: ServerContext = Depends(context)) -> NativeJob:
    if not 1 <= step <= 10**9:
        raise bad_request("step: a checkpoint's step number", param="step")
    with ctx.session() as session:
        job = actions.get_job(session, job_id, who.scope())
        new = fork_from_checkpoint(session, ctx.factory, job, client_spec(job, _paths(session, ctx, job)), step, who)
        add_event(session, new.id, f"Resumes from checkpoint step {step} of {job.id}")
        audit(session, team=who.team, key_id=who.key_id, action="job.resume_from_checkpoint", object_id=new.id,
              detail={"from": job.id, "step": step})
        view = NativeJob(**native_job(new, _paths(session, ctx, new)))
    ctx.controller.wake()
    return view


@router.get("/ops", summary="Operator's view (admin): device use per node, GPU and MIG slice; quotas and use; "
            "recent failures")
def operations(who: Principal = Depends(admin), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        return ops_view(session, ctx.controller.policy)
