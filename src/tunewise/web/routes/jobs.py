"""Your jobs, the queue per pool, and one job's live page (status, progress, curves, events, logs,
checkpoints), with the owner's and the admin's actions: cancel, pause, resume, priority."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.charts import loss_curves
from tunewise.web.pages import Page, action, page

router = APIRouter()
STATUSES = ("validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled")
LOG_TAIL_BYTES = 16_000
EVENTS_SHOWN = 100


@page(router, "/", "jobs.html", json_path="/index.json")
async def jobs_index(request: Request, api: PortalAPI) -> Page:
    status = request.query_params.get("status")
    listing = await api.get("/api/jobs", limit=100, status=status if status in STATUSES else None)
    return Page({"jobs": listing["data"], "has_more": listing["has_more"], "status": status},
                view={"statuses": STATUSES}, title="Jobs")


@page(router, "/queue", "queue.html")
async def queue(request: Request, api: PortalAPI) -> Page:
    cluster = await api.get("/api/cluster")
    return Page(cluster, title="Queue")


async def _metrics(api: PortalAPI, job_id: str) -> list[dict[str, Any]]:
    return (await api.get(f"/api/jobs/{job_id}/metrics"))["data"]


def curves_of(rows: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Metric rows (one per step) as the chart's [step, value] pairs."""
    return {key: [[r["step"], r[key]] for r in rows if r.get(key) is not None and r.get("step") is not None]
            for key in ("train_loss", "val_loss")}


@page(router, "/jobs/{job_id}", "job.html")
async def job_page(request: Request, api: PortalAPI) -> Page:
    job_id = request.path_params["job_id"]
    job = await api.get(f"/api/jobs/{job_id}")
    metrics, events, checkpoints, log = await asyncio.gather(
        _metrics(api, job_id), api.get(f"/v1/fine_tuning/jobs/{job_id}/events", limit=EVENTS_SHOWN),
        api.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints", limit=100),
        api.text(f"/api/jobs/{job_id}/logs", tail=LOG_TAIL_BYTES))
    messages = [e for e in events["data"] if e.get("type") != "metrics"]
    cluster = await api.get("/api/cluster")
    data = {"job": job, "metrics": metrics, "events": messages, "checkpoints": checkpoints["data"], "log_tail": log}
    view = {"curves": loss_curves([{"label": job_id, "curves": curves_of(metrics)}], chart_id="curves"),
            "priority_classes": cluster["priority_classes"], "last": metrics[-1] if metrics else None}
    return Page(data, view=view, title=f"Job {job_id}")


@router.get("/jobs/{job_id}/curves.svg", include_in_schema=False)
async def job_curves(request: Request, job_id: str) -> Response:
    """The loss chart alone, for the live page to swap in as new steps arrive."""
    try:
        rows = await _metrics(PortalAPI(request), job_id)
    except APIFailure as failure:
        return Response(failure.message, status_code=failure.status, media_type="text/plain")
    svg = loss_curves([{"label": job_id, "curves": curves_of(rows)}], chart_id="curves")
    return Response(str(svg), media_type="image/svg+xml", headers={"cache-control": "no-store"})


def _job_action(verb: str) -> None:
    @action(router, f"/jobs/{{job_id}}/{verb}")
    async def act(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
        job_id = request.path_params["job_id"]
        job = await api.post(f"/v1/fine_tuning/jobs/{job_id}/{verb}")
        request.state.notice = f"{job_id}: {verb} requested; the job is now {job['status']}"
        return f"/jobs/{job_id}"


for _verb in ("cancel", "pause", "resume"):
    _job_action(_verb)


@action(router, "/jobs/{job_id}/priority")
async def set_priority(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    job_id = request.path_params["job_id"]
    await api.send("PATCH", f"/api/jobs/{job_id}", json={"priority": str(form.get("priority") or "")})
    request.state.notice = f"{job_id}: priority set to {form.get('priority')}"
    return f"/jobs/{job_id}"


@action(router, "/jobs/{job_id}/checkpoints/{step}/resume")
async def resume_from(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    job_id, step = request.path_params["job_id"], request.path_params["step"]
    new = await api.post(f"/api/jobs/{job_id}/checkpoints/{step}/resume")
    request.state.notice = f"{new['id']} resumes {job_id} from its checkpoint at step {step}"
    return f"/jobs/{new['id']}"
