"""Native API beyond single jobs: registry actions, triggers, metric reports, file reports, runs, keys, audit."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tunewise.errors import TunewiseError
from tunewise.jobs import actions, keys, triggers
from tunewise.jobs.events import audit
from tunewise.jobs.files import get_file
from tunewise.jobs.keys import Principal
from tunewise.jobs.rundirs import final_run_dir, read_json
from tunewise.jobs.settings import in_workspace
from tunewise.jobs.store.models import AuditEntry, RegisteredModel, Trigger
from tunewise.jobs.store.pagination import owned
from tunewise.openai_api.errors import bad_request, conflict, not_found
from tunewise.server.auth import actor, admin, principal
from tunewise.server.context import ServerContext, context

router = APIRouter()


@router.get("/me", summary="Who this key acts as")
def me(who: Principal = Depends(principal)) -> dict:
    return {"team": who.team, "key_id": who.key_id, "is_admin": who.is_admin}


@router.get("/files/{file_id}/report", summary="The validation report kept with a training file")
def file_report(file_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        row = get_file(session, file_id, who.scope())
        return {"id": row.id, "filename": row.filename, "status": row.status, "report": row.report}


# --- runs and evaluation reports ---------------------------------------------------------------


@router.get("/runs/{job_id}", summary="A job's run: status, evaluation report and gate verdict")
def run_report(job_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        job = actions.get_job(session, job_id, who.scope())
    run_dir = final_run_dir(ctx.settings, job.id, job.spec)
    return {"job_id": job.id, "run": run_dir.name, "status": read_json(run_dir / "status.json"),
            "eval": read_json(run_dir / "eval.json") or None, "gate": read_json(run_dir / "gate.json") or None,
            "data_report": read_json(run_dir / "data_report.json") or None}


# --- registry ------------------------------------------------------------------------------------


def _registry_call(ctx: ServerContext, fn, *args, who: Principal | None = None):
    """A registry function on this server's workspace; its refusals become 400s with the reason."""
    try:
        with in_workspace(ctx.settings.home, user=actor(who) if who else None):
            return fn(*args)
    except TunewiseError as err:
        raise bad_request(err.message, code="registry_error") from None


def _owned_model(session, name: str, who: Principal) -> RegisteredModel:
    row = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if row is None or (not who.is_admin and row.team != who.team):
        raise not_found(f"No registered model {name!r}", param="name", code="model_not_found")
    return row


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="Registered model name.")
    job_id: str = Field(max_length=64, description="A succeeded job of your team.")


@router.get("/registry/models", summary="Your team's registered models")
def registry_models(who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        names = {r.name for r in session.scalars(owned(RegisteredModel, who.scope()))}
    if not names:
        return {"object": "list", "data": []}
    from tunewise.registry import list_models

    return {"object": "list", "data": [m for m in _registry_call(ctx, list_models) if m["name"] in names]}


@router.post("/registry/models", summary="Register a succeeded job's model as a new version")
def register(body: RegisterBody, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.registry import register_run

    with ctx.session() as session:
        job = actions.get_job(session, body.job_id, who.scope())
        if job.status != "succeeded":
            raise conflict(f"job {job.id} is {job.status}; only succeeded jobs can be registered", param="job_id")
        owner = session.scalar(select(RegisteredModel).where(RegisteredModel.name == body.name))
        if owner is not None and owner.team != job.team:
            raise conflict(f"the name {body.name!r} belongs to another team", param="name", code="name_taken")
        info = _registry_call(ctx, register_run, final_run_dir(ctx.settings, job.id, job.spec), body.name,
                              who=who)
        if owner is None:
            session.add(RegisteredModel(name=body.name, team=job.team, created_at=time.time()))
        audit(session, team=who.team, key_id=who.key_id, action="registry.register", object_id=body.name,
              detail={"job": job.id, "version": str(info.version)})
    return info.to_json()


@router.get("/registry/models/{name}", summary="A registered model's versions and alias history")
def registry_model(name: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.registry import history, list_versions

    with ctx.session() as session:
        _owned_model(session, name, who)
    return {"name": name, "versions": [v.to_json() for v in _registry_call(ctx, list_versions, name)],
            "history": _registry_call(ctx, history, name)}


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    to: Literal["staging", "production"]


@router.post("/registry/models/{name}/promote", summary="Move an alias to a version (the gate policy applies)")
def promote(name: str, body: PromoteBody, who: Principal = Depends(principal),
            ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.registry import promote as registry_promote

    with ctx.session() as session:
        _owned_model(session, name, who)
        event = _registry_call(ctx, registry_promote, name, body.version, body.to, who=who)
        audit(session, team=who.team, key_id=who.key_id, action="registry.promote", object_id=name,
              detail={"version": body.version, "to": body.to})
    return event


@router.post("/registry/models/{name}/rollback", summary="Move production back to its previous version")
def rollback(name: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    from tunewise.registry import rollback as registry_rollback

    with ctx.session() as session:
        _owned_model(session, name, who)
        event = _registry_call(ctx, registry_rollback, name, who=who)
        audit(session, team=who.team, key_id=who.key_id, action="registry.rollback", object_id=name)
    return event


# --- triggers and metric reports -----------------------------------------------------------------


@router.post("/triggers", summary="Create a retraining trigger (cron and/or metric threshold)")
def create_trigger(body: triggers.TriggerCreate, who: Principal = Depends(principal),
                   ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        row = triggers.create_trigger(session, ctx.factory, body, who)
        audit(session, team=who.team, key_id=who.key_id, action="trigger.create", object_id=row.id)
        return triggers.trigger_view(row)


@router.get("/triggers", summary="Your team's triggers")
def list_triggers(who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        rows = session.scalars(owned(Trigger, who.scope()).order_by(Trigger.seq))
        return {"object": "list", "data": [triggers.trigger_view(r) for r in rows]}


@router.get("/triggers/{trigger_id}", summary="A trigger")
def get_trigger(trigger_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        return triggers.trigger_view(triggers.get_trigger(session, trigger_id, who.scope()))


@router.delete("/triggers/{trigger_id}", summary="Delete a trigger")
def delete_trigger(trigger_id: str, who: Principal = Depends(principal), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        row = triggers.get_trigger(session, trigger_id, who.scope())
        session.delete(row)
        audit(session, team=who.team, key_id=who.key_id, action="trigger.delete", object_id=trigger_id)
    return {"id": trigger_id, "object": "trigger", "deleted": True}


class MetricReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(allow_inf_nan=False)


@router.post("/metrics/{name}", summary="Report a monitored metric; triggers watching it may queue a job")
def report_metric(name: str, body: MetricReport, who: Principal = Depends(principal),
                  ctx: ServerContext = Depends(context)) -> dict:
    if not 1 <= len(name) <= 100:
        raise bad_request("name: 1-100 characters", param="name")
    runner = ctx.extras["triggers"]
    with ctx.session() as session:
        started = runner.report_metric(session, who, name, body.value)
        audit(session, team=who.team, key_id=who.key_id, action="metric.report", object_id=name,
              detail={"value": body.value, "jobs": started})
    return {"metric": name, "value": body.value, "jobs_started": started}


# --- keys and audit (admin) ----------------------------------------------------------------------


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(max_length=40)
    name: str | None = Field(None, max_length=200)


@router.post("/keys", summary="Create an API key for a team (admin); the key is shown only here")
def create_key(body: KeyCreate, who: Principal = Depends(admin), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        try:
            made = keys.create_key(session, body.team, name=body.name)
        except TunewiseError as err:
            raise bad_request(err.message, param="team") from None
        audit(session, team=who.team, key_id=who.key_id, action="key.create", object_id=made.id,
              detail={"team": made.team})
    return {"id": made.id, "team": made.team, "key": made.key, "is_admin": made.is_admin}


@router.get("/keys", summary="API keys (admin): ids, teams, prefixes; never the keys")
def list_keys(who: Principal = Depends(admin), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        return {"object": "list", "data": [
            {"id": k.id, "team": k.team, "name": k.name, "prefix": k.prefix, "is_admin": k.is_admin,
             "created_at": k.created_at, "revoked_at": k.revoked_at, "last_used_at": k.last_used_at}
            for k in keys.list_keys(session)]}


@router.delete("/keys/{key_id}", summary="Revoke an API key (admin)")
def revoke_key(key_id: str, who: Principal = Depends(admin), ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        try:
            row = keys.revoke_key(session, key_id)
        except TunewiseError as err:
            raise not_found(err.message, param="key_id") from None
        audit(session, team=who.team, key_id=who.key_id, action="key.revoke", object_id=row.id)
    return {"id": row.id, "revoked": True}


@router.get("/audit", summary="Who did what: your team's entries (admin: everyone's)")
def audit_log(limit: int = Query(100, ge=1, le=1000), who: Principal = Depends(principal),
              ctx: ServerContext = Depends(context)) -> dict:
    with ctx.session() as session:
        rows = session.scalars(owned(AuditEntry, who.scope()).order_by(AuditEntry.seq.desc()).limit(limit))
        return {"object": "list", "data": [
            {"at": r.at, "team": r.team, "key_id": r.key_id, "action": r.action, "object_id": r.object_id,
             "detail": r.detail} for r in rows]}
