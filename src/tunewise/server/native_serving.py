"""Native API over the serving engine: what it holds (admin), A/B routes of a team's registered models,
their per-variant report, and promoting the winner (through the registry, whose gate applies).

A route is named after a registered model and splits its traffic between that model's versions
(`NAME:VERSION` or `NAME@ALIAS`); the team that owns the name manages its route.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tunewise.errors import TunewiseError
from tunewise.jobs.events import audit
from tunewise.jobs.keys import Principal
from tunewise.jobs.settings import in_workspace
from tunewise.jobs.store.models import RegisteredModel
from tunewise.openai_api.errors import APIError, bad_request, not_found
from tunewise.server.auth import actor, admin, principal
from tunewise.server.context import ServerContext, context

router = APIRouter(prefix="/api/serving", tags=["tunewise"])
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def _engine(ctx: ServerContext, *, start: bool) -> Any:
    lazy = ctx.extras.get("serving")
    if lazy is None:
        raise APIError(503, "serving is not installed in this server", code="serving_unavailable")
    if not start and lazy._engine is None:
        return None
    return lazy.get()


def _owned_name(ctx: ServerContext, name: str, who: Principal) -> None:
    with ctx.session() as session:
        team = session.scalar(select(RegisteredModel.team).where(RegisteredModel.name == name))
    if team is None or (not who.is_admin and team != who.team):
        raise not_found(f"No registered model {name!r}", param="name", code="model_not_found")


@router.get("", summary="What the serving engine holds: models, queues, adapter cache tiers, routes (admin)")
def serving_status(who: Principal = Depends(admin), ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.serve.status import engine_status

    lazy = ctx.extras.get("serving")
    engine = None if lazy is None else lazy._engine
    if engine is None:
        return {"object": "tunewise.serving", "available": lazy is not None, "started": False, "backend": None,
                "models": [], "routes": []}
    return {"object": "tunewise.serving", "available": True, "started": True,
            **engine_status(engine, root=ctx.settings.home)}


@router.get("/routes", summary="A/B routes of your team's registered models (live once serving has started)")
def list_routes(who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    engine = _engine(ctx, start=False)
    routes = [] if engine is None else [r.to_json() for r in list(engine.router.routes.values())]
    with ctx.session() as session:
        owners = dict(session.execute(select(RegisteredModel.name, RegisteredModel.team)).all())
    visible = [r for r in routes if who.is_admin or owners.get(r["name"]) == who.team]
    return {"object": "list", "data": visible}


class VariantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(max_length=200, description="NAME:VERSION or NAME@ALIAS of the routed name.")
    weight: float = Field(ge=0, le=1e6, allow_inf_nan=False)


class RouteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: list[VariantBody] = Field(min_length=1, max_length=8)
    shadow: str | None = Field(None, max_length=200, description="A version that answers too, unseen.")
    shadow_fraction: float = Field(1.0, ge=0, le=1)


def _check_variant(name: str, model: str, param: str) -> None:
    if not re.fullmatch(rf"{re.escape(name)}(:[0-9]{{1,9}}|@[A-Za-z0-9._-]{{1,64}})", model):
        raise bad_request(f"{param}: {model!r} is not a version of {name} (write {name}:VERSION or {name}@ALIAS)",
                          param=param)


@router.put("/routes/{name}", summary="Split a registered model's traffic between its versions")
def set_route(name: str, body: RouteBody, who: Principal = Depends(principal),
              ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.serve.ab import Route, Variant

    if not re.fullmatch(NAME, name):
        raise bad_request("name: a registered model name", param="name")
    _owned_name(ctx, name, who)
    for i, variant in enumerate(body.variants):
        _check_variant(name, variant.model, f"variants[{i}].model")
    if body.shadow:
        _check_variant(name, body.shadow, "shadow")
    try:
        route = Route(name, tuple(Variant(v.model, v.weight) for v in body.variants), body.shadow,
                      body.shadow_fraction)
    except TunewiseError as err:
        raise bad_request(err.message, param="variants") from None
    _engine(ctx, start=True).set_route(route)
    with ctx.session() as session:
        audit(session, team=who.team, key_id=who.key_id, action="route.set", object_id=name, detail=route.to_json())
    return route.to_json()


@router.delete("/routes/{name}", summary="Remove a route: the name serves its production version again")
def delete_route(name: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    _owned_name(ctx, name, who)
    engine = _engine(ctx, start=False)
    if engine is None or name not in engine.router.routes:
        raise not_found(f"No route {name!r}", param="name")
    engine.router.remove_route(name)
    with ctx.session() as session:
        audit(session, team=who.team, key_id=who.key_id, action="route.delete", object_id=name)
    return {"name": name, "deleted": True}


@router.get("/routes/{name}/report", summary="Per variant: requests, latency, feedback with a 95% interval; "
            "the winner")
async def route_report(name: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.serve.ab_report import route_report as report

    await asyncio.to_thread(_owned_name, ctx, name, who)
    engine = await asyncio.to_thread(_engine, ctx, start=True)
    route = engine.router.routes.get(name)
    result = await asyncio.to_thread(report, engine.store, name)
    return {**result, "live": route.to_json() if route else None}


class PromoteWinner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variant: str | None = Field(None, max_length=200, description="Promote this variant instead of the winner.")


@router.post("/routes/{name}/promote", summary="Promote the route's winner (or a chosen variant) to production")
def promote_winner(name: str, body: PromoteWinner, who: Principal = Depends(principal),
                   ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.registry import promote
    from tunewise.serve.ab_report import promotion_target, route_report

    _owned_name(ctx, name, who)
    engine = _engine(ctx, start=True)
    try:
        registered, version = promotion_target(route_report(engine.store, name), body.variant)
        if registered != name:
            raise bad_request(f"variant: {registered} is not {name}", param="variant")
        with in_workspace(ctx.settings.home, user=actor(who)):
            event = promote(registered, version, "production")
    except TunewiseError as err:
        raise bad_request(err.message, param="variant", code="promotion_refused") from None
    with ctx.session() as session:
        audit(session, team=who.team, key_id=who.key_id, action="registry.promote", object_id=name,
              detail={"version": str(version), "to": "production", "via": "route"})
    return event
