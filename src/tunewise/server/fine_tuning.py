"""OpenAI fine-tuning routes: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from tunewise.jobs import actions
from tunewise.jobs.events import audit, list_events
from tunewise.jobs.keys import Principal
from tunewise.jobs.openai_jobs import openai_submission
from tunewise.jobs.store.models import JobCheckpoint
from tunewise.jobs.store.pagination import cursor_page
from tunewise.openai_api import views
from tunewise.openai_api.errors import bad_request
from tunewise.openai_api.fine_tuning import CheckpointList, EventList, FineTuningJob, JobCreate, JobList
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/v1/fine_tuning", tags=["fine-tuning"])
_METADATA_KEY = re.compile(r"^metadata\[(.{1,64})\]$")


@router.post("/jobs", response_model=FineTuningJob, summary="Create a fine-tuning job")
def create_job(body: JobCreate, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        submission = openai_submission(session, ctx.settings, body, who)
        job = ctx.factory.create_job(session, submission, key_id=who.key_id)
        shape = views.fine_tuning_job(job)
    ctx.controller.wake()
    return shape


def _metadata_filter(request: Request) -> tuple[dict[str, str], bool]:
    """`metadata[k]=v` pairs of the query, and whether `metadata=null` asks for jobs without metadata."""
    pairs, null = {}, False
    for key, value in request.query_params.multi_items():
        match = _METADATA_KEY.match(key)
        if match:
            pairs[match.group(1)] = value
        elif key == "metadata":
            if value != "null":
                raise bad_request("metadata: filter with metadata[key]=value, or metadata=null", param="metadata")
            null = True
    if pairs and null:
        raise bad_request("metadata: give metadata[key]=value filters or metadata=null, not both", param="metadata")
    return pairs, null


@router.get("/jobs", response_model=JobList, summary="List fine-tuning jobs")
def list_jobs(request: Request, after: str | None = Query(None, max_length=64),
              limit: int = Query(20, ge=1, le=10_000), who: Principal = Depends(principal),
              ctx: ServerContext = Depends(context)) -> JobList:
    pairs, null = _metadata_filter(request)
    with ctx.session() as session:
        page = actions.list_jobs(session, who.scope(), after=after, limit=limit, metadata=pairs, metadata_null=null)
        return JobList(data=[views.fine_tuning_job(j) for j in page.items], has_more=page.has_more)


@router.get("/jobs/{fine_tuning_job_id}", response_model=FineTuningJob, summary="Retrieve a fine-tuning job")
def retrieve_job(fine_tuning_job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    with ctx.session() as session:
        return views.fine_tuning_job(actions.get_job(session, fine_tuning_job_id, who.scope()))


def _act(ctx: ServerContext, who: Principal, job_id: str, action: str, apply) -> FineTuningJob:
    with ctx.locked_session() as session:
        job = actions.get_job(session, job_id, who.scope())
        apply(session, job)
        audit(session, team=who.team, key_id=who.key_id, action=f"job.{action}", object_id=job.id)
        shape = views.fine_tuning_job(job)
    ctx.controller.wake()
    return shape


@router.post("/jobs/{fine_tuning_job_id}/cancel", response_model=FineTuningJob, summary="Cancel a fine-tuning job")
def cancel_job(fine_tuning_job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    return _act(ctx, who, fine_tuning_job_id, "cancel",
                lambda s, job: actions.cancel_job(s, job, ctx.controller.executor, ctx.controller.notify))


@router.post("/jobs/{fine_tuning_job_id}/pause", response_model=FineTuningJob, summary="Pause a fine-tuning job")
def pause_job(fine_tuning_job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    return _act(ctx, who, fine_tuning_job_id, "pause", lambda s, job: actions.pause_job(s, job, ctx.controller))


@router.post("/jobs/{fine_tuning_job_id}/resume", response_model=FineTuningJob, summary="Resume a fine-tuning job")
def resume_job(fine_tuning_job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)):
    return _act(ctx, who, fine_tuning_job_id, "resume", lambda s, job: actions.resume_job(s, job))


@router.get("/jobs/{fine_tuning_job_id}/events", response_model=EventList, summary="List a job's events")
def job_events(fine_tuning_job_id: str, after: str | None = Query(None, max_length=64),
               limit: int = Query(20, ge=1, le=10_000), who: Principal = Depends(principal),
               ctx: ServerContext = Depends(context)) -> EventList:
    with ctx.session() as session:
        job = actions.get_job(session, fine_tuning_job_id, who.scope())
        page = list_events(session, job.id, after=after, limit=limit)
        return EventList(data=[views.job_event(e) for e in page.items], has_more=page.has_more)


@router.get("/jobs/{fine_tuning_job_id}/checkpoints", response_model=CheckpointList, summary="List a job's checkpoints")
def job_checkpoints(fine_tuning_job_id: str, after: str | None = Query(None, max_length=64),
                    limit: int = Query(10, ge=1, le=10_000), who: Principal = Depends(principal),
                    ctx: ServerContext = Depends(context)) -> CheckpointList:
    with ctx.session() as session:
        job = actions.get_job(session, fine_tuning_job_id, who.scope())
        stmt = select(JobCheckpoint).where(JobCheckpoint.job_id == job.id, JobCheckpoint.pruned.is_(False))
        page = cursor_page(session, stmt, JobCheckpoint, after=after, limit=limit)
        data = [views.job_checkpoint(c) for c in page.items]
    return CheckpointList(data=data, has_more=page.has_more, first_id=data[0].id if data else None,
                          last_id=data[-1].id if data else None)
