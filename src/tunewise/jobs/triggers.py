"""Continuous retraining: a job template fired on a cron schedule or when a metric crosses a threshold.

A monitor reports a value with `POST /api/metrics/{name}`; each enabled trigger of that team
watching `name` fires when the value is past its threshold (`below` or `above`) and its cool-down
has passed since it last fired. A cron trigger fires at each time of its schedule (croniter syntax,
server time). Either way a job is created from the template like any native job, goes through its
evaluation gate, and on success may be registered in the model registry (`rollout.register_as`) and
given a traffic share through serving's A/B route (`rollout.traffic_percent`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunewise.jobs import ids
from tunewise.jobs.events import add_event
from tunewise.jobs.keys import Principal
from tunewise.jobs.native import NativeJobRequest, native_submission
from tunewise.jobs.store.db import Database
from tunewise.jobs.store.models import Job, RegisteredModel, Trigger
from tunewise.jobs.submit import JobFactory
from tunewise.openai_api.errors import bad_request, not_found

log = logging.getLogger("tunewise.triggers")


class Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid")
    register_as: str | None = Field(None, max_length=100, description="Register the succeeded run as a new "
                                    "version of this registered model.")
    alias: Literal["staging", "production"] | None = Field(None, description="Then move this alias to it "
                                                           "(the registry's promotion policy applies).")
    traffic_percent: float | None = Field(None, gt=0, le=100, description="Share of the registered model's "
                                          "traffic the new version gets through serving's A/B route.")


class TriggerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    template: NativeJobRequest
    cron: str | None = Field(None, max_length=100, description="Fire on this schedule (e.g. '0 3 * * 1').")
    metric: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$", description="Fire when this metric, "
                               "reported with POST /api/metrics/{name}, passes the threshold.")
    threshold: float | None = None
    direction: Literal["below", "above"] = "below"
    cooldown_seconds: float = Field(3600.0, ge=0, description="Fire at most once in this long.")
    rollout: Rollout | None = None
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron schedule (five fields: minute hour day month weekday)")
        return value


def _next_run(cron: str | None, now: float) -> float | None:
    return croniter(cron, now).get_next(float) if cron else None


def create_trigger(session: Session, factory: JobFactory, body: TriggerCreate, who: Principal) -> Trigger:
    if not body.cron and not body.metric:
        raise bad_request("a trigger needs cron, or metric with threshold", param="cron")
    if body.metric and body.threshold is None:
        raise bad_request("threshold: a metric trigger needs a threshold", param="threshold")
    submission = native_submission(body.template, who, factory.settings.models, source="trigger")
    # Check the template now, not at 3 a.m.: the same guard and validation a job gets.
    from tunewise.jobs.spec_guard import validate_spec

    guarded = factory.guard(session, submission.team).apply(
        {**submission.spec, "name": "trigger-check", "base_model": submission.model}, prefix="template.spec")
    validate_spec(guarded, prefix="template.spec")
    factory.priority(submission.priority_class, "template.priority")
    factory.pool(submission.pool, "template.pool")
    now = time.time()
    row = Trigger(id=ids.new_id(ids.TRIGGER), team=submission.team, name=body.name,
                  template=body.template.model_dump(exclude_none=True), cron=body.cron, metric=body.metric,
                  threshold=body.threshold, direction=body.direction, cooldown_s=body.cooldown_seconds,
                  rollout=body.rollout.model_dump(exclude_none=True) if body.rollout else None, enabled=body.enabled,
                  next_run_at=_next_run(body.cron, now), created_at=now)
    session.add(row)
    session.flush()
    return row


def get_trigger(session: Session, trigger_id: str, scope: str | None) -> Trigger:
    stmt = select(Trigger).where(Trigger.id == trigger_id)
    if scope is not None:
        stmt = stmt.where(Trigger.team == scope)
    row = session.scalar(stmt)
    if row is None:
        raise not_found(f"No such trigger: {trigger_id}", param="trigger_id", code="trigger_not_found")
    return row


def trigger_view(row: Trigger) -> dict[str, Any]:
    return {"id": row.id, "object": "trigger", "name": row.name, "team": row.team, "template": row.template,
            "cron": row.cron, "metric": row.metric, "threshold": row.threshold, "direction": row.direction,
            "cooldown_seconds": row.cooldown_s, "rollout": row.rollout, "enabled": row.enabled,
            "next_run_at": row.next_run_at, "last_fired_at": row.last_fired_at, "last_value": row.last_value,
            "created_at": row.created_at}


def _past(row: Trigger, value: float) -> bool:
    return value < row.threshold if row.direction == "below" else value > row.threshold


SplitTraffic = Callable[[str, str, float], str]  # (registered name, new version, percent) -> what was done


class TriggerRunner:
    def __init__(self, db: Database, factory: JobFactory, controller: Any):
        self.db = db
        self.factory = factory
        self.controller = controller
        self.split_traffic: SplitTraffic | None = None  # set when serving is mounted

    def _fire(self, session: Session, row: Trigger, why: str) -> Job:
        request = NativeJobRequest.model_validate(row.template)
        who = Principal(team=row.team, key_id=f"trigger:{row.id}", is_admin=False)
        submission = native_submission(request, who, self.factory.settings.models, source="trigger",
                                       trigger_id=row.id)
        job = self.factory.create_job(session, submission, key_id=who.key_id)
        add_event(session, job.id, f"Created by trigger {row.name!r} ({row.id}): {why}")
        row.last_fired_at = time.time()
        log.info("trigger %s fired: %s -> %s", row.id, why, job.id)
        return job

    def report_metric(self, session: Session, who: Principal, name: str, value: float) -> list[str]:
        """Record a monitor's value; returns the ids of the jobs it started."""
        started = []
        stmt = select(Trigger).where(Trigger.metric == name, Trigger.enabled.is_(True), Trigger.team == who.team)
        now = time.time()
        for row in session.scalars(stmt):
            row.last_value = value
            cooled = row.last_fired_at is None or now - row.last_fired_at >= row.cooldown_s
            if _past(row, value) and cooled:
                started.append(self._fire(session, row, f"{name}={value:g} is {row.direction} {row.threshold:g}").id)
        if started:
            self.controller.wake()
        return started

    def fire_due(self) -> None:
        """Fire cron triggers whose time has come (once, however long the server was down), then roll out."""
        now = time.time()
        with self.db.session() as session:
            due = session.scalars(select(Trigger).where(Trigger.enabled.is_(True), Trigger.next_run_at.is_not(None),
                                                        Trigger.next_run_at <= now))
            for row in due:
                try:
                    self._fire(session, row, f"schedule {row.cron}")
                except Exception as err:
                    log.warning("trigger %s could not create its job: %s", row.id, err)
                row.next_run_at = _next_run(row.cron, now)
        self.roll_out_succeeded()

    def roll_out_succeeded(self) -> None:
        """Register (and promote, and give a traffic share to) trigger jobs that succeeded."""
        with self.db.session() as session:
            jobs = list(session.scalars(select(Job).where(Job.trigger_id.is_not(None), Job.status == "succeeded",
                                                          Job.rollout.is_(None))))
            for job in jobs:
                trigger = session.scalar(select(Trigger).where(Trigger.id == job.trigger_id))
                plan = (trigger.rollout if trigger else None) or {}
                job.rollout = _owned_roll_out(session, self.factory.settings, job, plan, self.split_traffic)
                add_event(session, job.id, f"Rollout: {job.rollout['message']}",
                          level="info" if job.rollout["status"] != "failed" else "warn")


def _owned_roll_out(session: Session, settings: Any, job: Job, plan: dict[str, Any],
                    split_traffic: SplitTraffic | None) -> dict[str, Any]:
    """`roll_out` under the registry's team ownership, as `POST /api/registry/models` applies it: a name
    another team owns is refused, a new name becomes the job's team's (its routes answer that team only)."""
    name = plan.get("register_as")
    owner = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name)) if name else None
    if owner is not None and owner.team != job.team:
        return {"status": "failed", "message": f"rollout failed: the registered name {name!r} belongs to another team"}
    out = roll_out(settings, job, plan, split_traffic)
    if owner is None and out["status"] == "registered":
        session.add(RegisteredModel(name=name, team=job.team, created_at=time.time()))
    return out


def roll_out(settings: Any, job: Job, plan: dict[str, Any], split_traffic: SplitTraffic | None = None
             ) -> dict[str, Any]:
    """Carry out a trigger's rollout for a succeeded job; the outcome in words and fields."""
    if not plan.get("register_as"):
        return {"status": "none", "message": "nothing to roll out"}
    from tunewise.jobs.settings import in_workspace

    try:
        with in_workspace(settings.home):
            out = _register_and_promote(settings, job, plan)
    except Exception as err:  # the job succeeded either way; the rollout's failure is recorded on it
        return {"status": "failed", "message": f"rollout failed: {err}"}
    if plan.get("traffic_percent"):
        out["traffic_percent"] = plan["traffic_percent"]
        try:
            done = (split_traffic(out["model"], out["version"], plan["traffic_percent"]) if split_traffic
                    else "no traffic split: serving is not mounted in this server")
        except Exception as err:
            done = f"traffic split failed: {err}"
        out["message"] += f"; {done}"
    return out


def _register_and_promote(settings: Any, job: Job, plan: dict[str, Any]) -> dict[str, Any]:
    from tunewise.jobs.rundirs import final_run_dir
    from tunewise.registry import promote, register_run

    name = plan["register_as"]
    info = register_run(final_run_dir(settings, job.id, job.spec), name)
    out = {"status": "registered", "model": name, "version": str(info.version),
           "message": f"registered as {name} version {info.version}"}
    if plan.get("alias"):
        promote(name, info.version, plan["alias"])
        out["alias"] = plan["alias"]
        out["message"] += f", {plan['alias']} alias moved to it"
    return out
