"""Chat with fine-tuned models: the serving engine's routes, with `ft:` ids resolved by the job store.

Serving lives in `tunewise.serve` (the engine) and `tunewise.server.inference` (its OpenAI routes).
`mount_serving(app, ctx)` adds a resolver for `ft:<base>:<team>:<suffix>:<id>` (a succeeded job's
model) and `...:ckpt-step-N` (one of its checkpoints, made servable on first use), and mounts the
routes behind the API key with a team check: another team's model answers 404. The engine (and
torch with it) is built on the first inference request, so a server that only schedules jobs
starts fast. Where serving is not installed, the API runs without chat routes and says so.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import select

from tunewise.jobs.settings import in_workspace
from tunewise.jobs.store.models import Job
from tunewise.openai_api.errors import not_found
from tunewise.server.auth import principal
from tunewise.server.context import ServerContext

log = logging.getLogger("tunewise.server")
FT_ID = re.compile(r"^ft:(?P<base>[^:]+):(?P<team>[^:]+):(?P<suffix>[^:]*):(?P<token>[A-Za-z0-9]{8})"
                   r"(?::ckpt-step-(?P<step>\d{1,9}))?$")


def serving_available() -> bool:
    return (importlib.util.find_spec("tunewise.serve") is not None
            and importlib.util.find_spec("tunewise.server.inference") is not None)


class LazyEngine:
    """The serving engine, built on first use (it loads torch and the base models' tokenizers)."""

    def __init__(self, ctx: ServerContext):
        self._ctx = ctx
        self._engine: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = build_engine(self._ctx)
                restore_routes(self._ctx, self._engine)
            return self._engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def build_engine(ctx: ServerContext) -> Any:
    from tunewise.serve.config import ServeConfig
    from tunewise.serve.engine import Engine

    section = dict(ctx.config.serving)
    section.setdefault("models", [f"{name}={target}" for name, target in ctx.settings.models.items()])
    section["runs"] = False  # run directories are jobs of every team: they are reached through ft: ids
    with in_workspace(ctx.settings.home):  # the engine finds the registry and runs of this workspace
        engine = Engine(ServeConfig.model_validate(section))
    engine.add_resolver(FineTunedModels(ctx).resolve)
    return engine


class FineTunedModels:
    """Resolves `ft:` ids to the job's artifact (or a checkpoint's) and the team that owns it."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def resolve(self, name: str) -> Any:
        from tunewise.serve.errors import UnknownModel
        from tunewise.serve.names import resolve_artifact

        if not name.startswith("ft:"):
            return None
        match = FT_ID.match(name)
        if match is None:
            raise UnknownModel(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        with self.ctx.session() as session:
            job = session.scalar(select(Job).where(Job.model_token == match["token"], Job.team == match["team"],
                                                   Job.model == match["base"]))
        if job is None or (job.suffix or "") != match["suffix"]:
            raise UnknownModel(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        artifact = self._artifact(job, match["step"], name)
        return resolve_artifact(artifact, id=name, kind="fine_tune", owner=job.team)

    def _artifact(self, job: Job, step: str | None, name: str) -> Path:
        from tunewise.serve.errors import UnknownModel

        if step is None:
            if job.status != "succeeded":
                raise UnknownModel(f"The model `{name}` is not ready: its job is {job.status}", param="model")
            from tunewise.jobs.rundirs import final_run_dir

            return final_run_dir(self.ctx.settings, job.id, job.spec) / "artifact"
        from tunewise.errors import TunewiseError
        from tunewise.jobs.checkpoint_export import checkpoint_artifact

        try:
            return checkpoint_artifact(self.ctx.settings, job.id, job.spec, int(step))
        except TunewiseError as err:
            raise UnknownModel(f"The model `{name}`: {err.message}", param="model") from None


def serving_access(request: Request, who: Any = Depends(principal)) -> None:
    """Every inference route needs a key; Prometheus metrics (their labels name every team's models)
    need the admin key."""
    if request.url.path == "/metrics" and not who.is_admin:
        from tunewise.openai_api.errors import APIError

        raise APIError(403, "/metrics names every team's models: it needs the admin key", code="permission_denied")


def traffic_split(ctx: ServerContext, engine: Any):
    """For trigger rollouts: route a registered name's traffic between its production version and a new
    one (`percent` to the new), through serving's A/B router."""

    def split(name: str, version: str, percent: float) -> str:
        from tunewise.registry import get_version
        from tunewise.serve.ab import Route, Variant

        with in_workspace(ctx.settings.home):
            current = get_version(name, "production").version
        if str(current) == str(version):
            return f"{name}:{version} is already production"
        engine.set_route(Route(name, (Variant(f"{name}:{current}", 100.0 - percent),
                                      Variant(f"{name}:{version}", percent))))
        return f"route {name}: {name}:{current} {100 - percent:g}%, {name}:{version} {percent:g}%"

    return split


def restore_routes(ctx: ServerContext, engine: Any) -> None:
    """Routes set by rollouts live in the engine: set them again when a server starts serving."""
    with ctx.session() as session:
        rows = list(session.scalars(select(Job).where(Job.rollout.is_not(None)).order_by(Job.seq)))
        latest = {r.rollout["model"]: r.rollout for r in rows if (r.rollout or {}).get("traffic_percent")}
    split = traffic_split(ctx, engine)
    for name, rollout in latest.items():
        try:
            split(name, rollout["version"], rollout["traffic_percent"])
        except Exception as err:  # a registry that moved on: serve without the old split
            log.warning("could not restore the traffic split of %s: %s", name, err)


class TeamCheck:
    """Another team's model is hidden (404): a fine-tuned model by its job's team, a registered one by
    the team that registered it through the server. Base models, and names registered outside the
    server (by the operator, with `tunewise register`), are everyone's."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def owner(self, model: Any) -> str | None:
        if getattr(model, "owner", None) is not None:
            return model.owner
        name = getattr(model, "registered_name", None)
        if name is None:
            return None
        from tunewise.jobs.store.models import RegisteredModel

        with self.ctx.session() as session:
            return session.scalar(select(RegisteredModel.team).where(RegisteredModel.name == name))

    def __call__(self, request: Request, model: Any) -> None:
        who = getattr(request.state, "principal", None)
        owner = self.owner(model)
        if owner is not None and who is not None and not who.is_admin and owner != who.team:
            raise not_found(f"The model `{model.id}` does not exist or you do not have access to it.",
                            param="model", code="model_not_found")


def mount_serving(app: FastAPI, ctx: ServerContext) -> bool:
    """Mount `/v1/chat/completions`, `/v1/completions`, `/v1/models` and friends; False when serving is absent."""
    if not serving_available():
        log.warning("serving is not installed in this build: fine-tuned models cannot be chatted with")
        ctx.extras["serving"] = None
        return False
    from tunewise.server.inference import build_inference_router

    from tunewise.openai_api.errors import ErrorResponse
    from tunewise.server.fine_tuned_models import model_routes
    from tunewise.server.openapi import ERROR_RESPONSES

    engine = LazyEngine(ctx)
    ctx.extras["serving"] = engine
    triggers = ctx.extras.get("triggers")
    if triggers is not None:
        triggers.split_traffic = traffic_split(ctx, engine)
    check = TeamCheck(ctx)
    # Ours first: /v1/models lists the team's fine-tuned models beside what the engine serves.
    responses = {**ERROR_RESPONSES, 503: {"model": ErrorResponse, "description": "The model cannot be loaded."}}
    app.include_router(model_routes(ctx, engine, check), dependencies=[Depends(serving_access)], tags=["inference"],
                       responses=responses)
    app.include_router(build_inference_router(engine, authorize=check), dependencies=[Depends(serving_access)],
                       tags=["inference"], responses=responses)
    return True
