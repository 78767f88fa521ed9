"""Native API (`/api/...`): full job specs, dry runs, queue and cluster views, logs, live metrics.

The operations that are not about one job (registry, triggers, metrics reports, keys, audit) are in
`native_ops.py`, mounted on the same prefix.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunewise.jobs import actions
from tunewise.jobs.dry_run import dry_run
from tunewise.jobs.events import audit, events_since
from tunewise.jobs.executors.local import read_log
from tunewise.jobs.files import stored_paths
from tunewise.jobs.keys import Principal
from tunewise.jobs.native import NativeJobRequest, native_submission
from tunewise.jobs.queue_view import cluster_view
from tunewise.jobs.rundirs import active_run_dir, read_metrics
from tunewise.jobs.store.models import Job
from tunewise.jobs.views import native_job
from tunewise.openai_api.fine_tuning import FINAL_STATUSES
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext, context
from tunewise.server.native_ops import router as ops_router
from tunewise.server.native_shapes import ClusterView, DryRun, NativeJob, NativeJobList

router = APIRouter(prefix="/api", tags=["tunewise"])
SSE_POLL_S = 0.5


def _view(session, ctx: ServerContext, job: Job) -> NativeJob:
    ids = [f for f in [job.training_file, job.validation_file, *(job.files or [])] if f]
    paths = {p: row.id for p, row in stored_paths(session, ctx.blobs, ctx.settings.scratch / "files", ids).items()}
    return NativeJob(**native_job(job, paths))


@router.post("/jobs", response_model=NativeJob, summary="Submit a job spec (any method, stages)")
def submit_job(body: NativeJobRequest, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        job = ctx.factory.create_job(session, native_submission(body, who, ctx.settings.models), key_id=who.key_id)
        view = _view(session, ctx, job)
    ctx.controller.wake()
    return view


@router.post("/jobs/dry-run", response_model=DryRun, summary="Validate, plan and place a job without running it")
def dry_run_job(body: NativeJobRequest, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        return DryRun(**dry_run(session, ctx.factory, ctx.controller.policy, body, who,
                                min_examples=ctx.controller.min_examples))


@router.get("/jobs", response_model=NativeJobList, summary="List jobs with queue places and reasons")
def list_jobs(after: str | None = Query(None, max_length=64), limit: int = Query(20, ge=1, le=10_000),
              status: Literal["validating_files", "queued", "running", "paused", "succeeded", "failed",
                              "cancelled"] | None = None,
              who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> NativeJobList:
    with ctx.session() as session:
        page = actions.list_jobs(session, who.scope(), after=after, limit=limit, status=status)
        return NativeJobList(data=[_view(session, ctx, j) for j in page.items], has_more=page.has_more)


@router.get("/jobs/{job_id}", response_model=NativeJob, summary="A job with its queue place, progress and spec")
def get_job(job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        return _view(session, ctx, actions.get_job(session, job_id, who.scope()))


class JobPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: str = Field(max_length=32, description="New priority class (owner or admin).")


@router.patch("/jobs/{job_id}", response_model=NativeJob, summary="Change a job's priority class")
def patch_job(job_id: str, body: JobPatch, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.locked_session() as session:
        job = actions.get_job(session, job_id, who.scope())
        actions.set_priority(session, job, body.priority, ctx.settings.priority_classes)
        audit(session, team=who.team, key_id=who.key_id, action="job.priority", object_id=job.id,
              detail={"priority": body.priority})
        view = _view(session, ctx, job)
    ctx.controller.wake()
    return view


@router.get("/jobs/{job_id}/logs", summary="The job's training log (text); follow=true streams it",
            response_class=StreamingResponse, responses={200: {"content": {"text/plain": {}}}})
async def job_logs(request: Request, job_id: str, offset: int = Query(0, ge=0), follow: bool = False,
                   tail: int | None = Query(None, ge=1, le=16 << 20, description="Only the last `tail` bytes."),
                   who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    job = await asyncio.to_thread(_find, ctx, job_id, who)
    log_path = ctx.settings.job_dir(job.id) / "train.log"
    if tail is not None and not follow:
        size = log_path.stat().st_size if log_path.is_file() else 0
        data, _ = read_log(log_path, max(offset, size - tail), limit=tail)
        return PlainTextResponse(data.decode("utf-8", "replace"))
    if not follow:
        data, _ = read_log(log_path, offset, limit=16 << 20)
        return PlainTextResponse(data.decode("utf-8", "replace"))

    def finished() -> bool:
        with ctx.session() as session:
            return actions.get_job(session, job_id, who.scope()).status in FINAL_STATUSES

    async def stream():
        position = offset
        while not await request.is_disconnected():
            data, position = read_log(log_path, position)
            if data:
                yield data
                continue
            if await asyncio.to_thread(finished):
                data, position = read_log(log_path, position)
                if data:
                    yield data
                return
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


@router.get("/jobs/{job_id}/metrics", summary="Every step's metrics so far (JSON rows)")
def job_metrics(job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        job = actions.get_job(session, job_id, who.scope())
    rows, _ = read_metrics(active_run_dir(ctx.settings, job.id, job.spec), 0)
    return {"object": "list", "job_id": job.id, "data": rows}


@router.get("/jobs/{job_id}/stream", summary="Live events and metrics (server-sent events)",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def job_stream(request: Request, job_id: str, who: Principal = Depends(principal),
                     ctx: ServerContext = Depends(context)):
    """`event: status|message|metrics` lines as the job progresses; the stream ends when the job finishes."""
    await asyncio.to_thread(_find, ctx, job_id, who)

    def snapshot(seq: int) -> tuple[str, int | None, int | None, list]:
        with ctx.session() as session:
            job = actions.get_job(session, job_id, who.scope())
            new = [(e.seq, e.type, {"id": e.id, "created_at": e.created_at, "level": e.level, "message": e.message,
                                    "data": e.data}) for e in events_since(session, job_id, seq)]
            return job.status, job.step, job.total_steps, new

    async def stream():
        seq, last_status = 0, None
        while not await request.is_disconnected():
            status, step, total, new = await asyncio.to_thread(snapshot, seq)  # the store is synchronous
            if status != last_status:
                last_status = status
                yield _sse("status", {"status": status, "step": step, "total_steps": total})
            for seq, kind, payload in new:
                yield _sse("metrics" if kind == "metrics" else "message", payload)
            if status in FINAL_STATUSES and not new:
                yield _sse("done", {"status": status})
                return
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _find(ctx: ServerContext, job_id: str, who: Principal) -> Job:
    with ctx.session() as session:
        return actions.get_job(session, job_id, who.scope())


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/cluster", response_model=ClusterView, summary="Pools, what runs and waits where, quotas, classes")
def cluster(who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> ClusterView:
    with ctx.session() as session:
        return ClusterView(**cluster_view(session, ctx.controller.policy, who.scope(), list(ctx.settings.models)))


router.include_router(ops_router)
