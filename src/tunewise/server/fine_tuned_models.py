"""`GET /v1/models` in the control plane: what the serving engine lists that the caller may use, and
the caller's fine-tuned models (`ft:` ids of succeeded jobs), as OpenAI lists them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from tunewise.jobs.keys import Principal
from tunewise.jobs.store.models import Job
from tunewise.openai_api.errors import APIError, not_found
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext


def _ft_entry(job: Job) -> dict[str, Any]:
    return {"id": job.fine_tuned_model, "object": "model", "created": int(job.finished_at or job.created_at),
            "owned_by": job.team, "parent": job.model, "root": job.model, "kind": "fine_tune", "version": None,
            "loaded": False, "tier": None, "job": job.id}


def model_routes(ctx: ServerContext, engine: Any, check: Any) -> APIRouter:
    router = APIRouter()

    def fine_tuned(who: Principal, model_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(Job).where(Job.status == "succeeded", Job.fine_tuned_model.is_not(None))
        if not who.is_admin:
            stmt = stmt.where(Job.team == who.team)
        if model_id is not None:
            stmt = stmt.where(Job.fine_tuned_model == model_id)
        with ctx.session() as session:
            return [_ft_entry(job) for job in session.scalars(stmt.order_by(Job.seq.desc()).limit(1000))]

    def served(request: Request) -> list[dict[str, Any]]:
        visible = []
        for entry in engine.list_models():
            try:
                check(request, engine.names.resolve(entry["id"])) if entry.get("kind") != "route" else None
            except (APIError, Exception):  # hidden from this team, or no longer resolvable
                continue
            visible.append(entry)
        return visible

    # Same paths and shapes as serving's model routes, which they shadow (so the schema lists those once).
    @router.get("/v1/models", include_in_schema=False)
    async def list_models(request: Request, who: Principal = Depends(principal)) -> dict[str, Any]:
        entries = await asyncio.to_thread(served, request)
        return {"object": "list", "data": entries + await asyncio.to_thread(fine_tuned, who)}

    @router.get("/v1/models/{model_id:path}", include_in_schema=False)
    async def get_model(model_id: str, request: Request, who: Principal = Depends(principal)) -> dict[str, Any]:
        if model_id.startswith("ft:"):
            found = await asyncio.to_thread(fine_tuned, who, model_id)
        else:
            found = [e for e in await asyncio.to_thread(served, request) if e["id"] == model_id]
        if not found:
            raise not_found(f"The model `{model_id}` does not exist or you do not have access to it.",
                            param="model", code="model_not_found")
        return found[0]

    return router
