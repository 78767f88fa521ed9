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


def team_check(request: Request, model: Any) -> None:
    """Another team's model is hidden (404); models nobody owns (bases, shared registry names) are not."""
    who = getattr(request.state, "principal", None)
    owner = getattr(model, "owner", None)
    if owner is not None and who is not None and not who.is_admin and owner != who.team:
        raise not_found(f"The model `{model.id}` does not exist or you do not have access to it.", param="model",
                        code="model_not_found")


def mount_serving(app: FastAPI, ctx: ServerContext) -> bool:
    """Mount `/v1/chat/completions`, `/v1/completions`, `/v1/models` and friends; False when serving is absent."""
    if not serving_available():
        log.warning("serving is not installed in this build: fine-tuned models cannot be chatted with")
        ctx.extras["serving"] = None
        return False
    from tunewise.server.inference import build_inference_router

    engine = LazyEngine(ctx)
    ctx.extras["serving"] = engine
    app.include_router(build_inference_router(engine, authorize=team_check), dependencies=[Depends(serving_access)],
                       tags=["inference"])
    return True
