"""The operator's view (admin): device use per pool, node, GPU and MIG slice; each team's quota and
use; jobs that failed lately and why; what serving holds (models, queues, the adapter cache). The API
refuses a team's key (403), and so does this page."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from tunewise.web.api import PortalAPI
from tunewise.web.pages import Page, page

router = APIRouter()


@page(router, "/ops", "ops.html")
async def operations(request: Request, api: PortalAPI) -> Page:
    ops, serving = await asyncio.gather(api.get("/api/ops"), api.get("/api/serving"))
    return Page({"ops": ops, "serving": serving}, title="Operations")
