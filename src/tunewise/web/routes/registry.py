"""The registry: registered models with their versions, aliases, lineage and promotion history;
register, promote and rollback (the registry's gate policy decides, the page shows its refusal); a
model's A/B route with per-variant traffic and feedback, and promoting its winner."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request

from tunewise.web.api import APIFailure, PortalAPI
from tunewise.web.pages import Page, action, page

router = APIRouter()
ROUTE_VARIANTS = 3  # rows in the route form


def _model_url(name: str) -> str:
    return f"/registry/{quote(name, safe='')}"


@page(router, "/registry", "registry.html")
async def registry(request: Request, api: PortalAPI) -> Page:
    models = await api.get("/api/registry/models")
    succeeded = await api.get("/api/jobs", status="succeeded", limit=100)
    return Page({"models": models["data"], "registrable_jobs": succeeded["data"],
                 "chosen_job": request.query_params.get("job_id")}, title="Registry")


@action(router, "/registry")
async def register(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = str(form.get("name") or "").strip()
    info = await api.post("/api/registry/models", json={"name": name, "job_id": str(form.get("job_id") or "")})
    request.state.notice = f"Registered {info['name']} version {info['version']} (gate: {info['gate']})"
    return _model_url(info["name"])


async def _route(api: PortalAPI, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The model's live A/B route and its report, if it has one (the report needs the serving engine,
    which a model without a route does not start). A server without serving has no routes."""
    try:
        routes = await api.get("/api/serving/routes")
    except APIFailure as failure:
        if failure.code == "serving_unavailable":
            return None, None
        raise
    live = next((r for r in routes["data"] if r["name"] == name), None)
    if live is None:
        return None, None
    return live, await api.get(f"/api/serving/routes/{quote(name, safe='')}/report")


@page(router, "/registry/{name}", "model.html")
async def model(request: Request, api: PortalAPI) -> Page:
    name = request.path_params["name"]
    detail = await api.get(f"/api/registry/models/{quote(name, safe='')}")
    route, report = await _route(api, name)
    detail["versions"].sort(key=lambda v: -int(v["version"]))
    return Page({**detail, "route": route, "route_report": report},
                view={"variant_rows": ROUTE_VARIANTS}, title=f"Model {name}")


@action(router, "/registry/{name}/promote")
async def promote(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = request.path_params["name"]
    body = {"version": str(form.get("version") or ""), "to": str(form.get("to") or "")}
    event = await api.post(f"/api/registry/models/{quote(name, safe='')}/promote", json=body)
    request.state.notice = f"{name}: {event['alias']} is now version {event['to']}"
    return _model_url(name)


@action(router, "/registry/{name}/rollback")
async def rollback(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = request.path_params["name"]
    event = await api.post(f"/api/registry/models/{quote(name, safe='')}/rollback")
    request.state.notice = f"{name}: production rolled back from version {event['from']} to {event['to']}"
    return _model_url(name)


def route_variants(form: dict[str, Any]) -> list[dict[str, Any]]:
    """The form's filled variant rows (`variant_N` and `weight_N`) as the API's variants; a weight
    that is not a number goes through as text so the API names the field."""
    variants = []
    for i in range(1, ROUTE_VARIANTS + 1):
        model = str(form.get(f"variant_{i}") or "").strip()
        if not model:
            continue
        weight: Any = str(form.get(f"weight_{i}") or "").strip()
        try:
            weight = float(weight)
        except ValueError:
            pass
        variants.append({"model": model, "weight": weight})
    return variants


@action(router, "/registry/{name}/route")
async def set_route(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = request.path_params["name"]
    route = await api.send("PUT", f"/api/serving/routes/{quote(name, safe='')}",
                           json={"variants": route_variants(form)})
    split = ", ".join(f"{v['model']} {v['weight']:g}" for v in route["variants"])
    request.state.notice = f"{name}: traffic now split {split}"
    return _model_url(name)


@action(router, "/registry/{name}/route/delete")
async def delete_route(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = request.path_params["name"]
    await api.call("DELETE", f"/api/serving/routes/{quote(name, safe='')}")
    request.state.notice = f"{name}: route removed; the name serves its production version"
    return _model_url(name)


@action(router, "/registry/{name}/route/promote")
async def promote_winner(request: Request, api: PortalAPI, form: dict[str, Any]) -> str:
    name = request.path_params["name"]
    variant = str(form.get("variant") or "").strip() or None
    event = await api.post(f"/api/serving/routes/{quote(name, safe='')}/promote", json={"variant": variant})
    request.state.notice = f"{name}: production is now version {event['to']}"
    return _model_url(name)
