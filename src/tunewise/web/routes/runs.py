"""Runs side by side (loss curves overlaid, final metrics, where the specs differ) and one run's
evaluation report (gate verdict, forgetting check, adapter spectrum). Both read the native API
(`/api/runs/compare`, `/api/runs/{job_id}`); this module adds only the charts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from tunewise.web.api import PortalAPI
from tunewise.web.charts import loss_curves
from tunewise.web.pages import Page, page
from tunewise.web.report_charts import spectrum_chart

router = APIRouter()
PICKABLE = 100  # jobs offered in the picker


def chosen_ids(request: Request) -> list[str]:
    """The `job_id` query values, in order, without repeats or blanks."""
    return list(dict.fromkeys(j for j in request.query_params.getlist("job_id") if j))


def short_id(job_id: str) -> str:
    """A job id's last characters, enough to tell runs apart in a chart's legend (the tables show it whole)."""
    return "…" + job_id[-6:] if len(job_id) > 8 else job_id


@page(router, "/runs", "runs.html")
async def runs(request: Request, api: PortalAPI) -> Page:
    ids = chosen_ids(request)
    listing = await api.get("/api/jobs", limit=PICKABLE)
    data: dict[str, Any] = {"chosen": ids, "jobs": listing["data"], "comparison": None}
    view: dict[str, Any] = {}
    if len(ids) >= 2:
        comparison = await api.get("/api/runs/compare", job_id=ids)
        data["comparison"] = comparison
        view["curves"] = loss_curves([{"label": short_id(r["id"]), "curves": r["curves"]} for r in comparison["runs"]],
                                     chart_id="compare-curves", title="Loss per step, runs overlaid")
    return Page(data, view=view, title="Compare runs" if data["comparison"] else "Runs")


@page(router, "/jobs/{job_id}/report", "report.html")
async def report(request: Request, api: PortalAPI) -> Page:
    job_id = request.path_params["job_id"]
    job, run = await asyncio.gather(api.get(f"/api/jobs/{job_id}"), api.get(f"/api/runs/{job_id}"))
    evaluation = run.get("eval") or {}
    view = {"spectrum": spectrum_chart(evaluation.get("spectrum"), chart_id="spectrum")
            if evaluation.get("spectrum") else None}
    return Page({"job": job, "run": run}, view=view, title=f"Report of {job_id}")
