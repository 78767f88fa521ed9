"""`create_app(config) -> FastAPI`: the control plane in one process.

The REST API (OpenAI's files, uploads and fine-tuning routes; the native `/api` routes), the
scheduling loop on a background thread, the local executor, and the serving routes for the
fine-tuned models, and the web portal at `/`. `tunewise server` runs it under uvicorn.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tunewise.jobs.blobs import BlobStore
from tunewise.jobs.controller import Controller
from tunewise.jobs.executors import Executor, make_executor
from tunewise.jobs.policy import SchedulingPolicy, load_policy
from tunewise.jobs.settings import JobSettings
from tunewise.jobs.store.db import Database, default_url
from tunewise.jobs.submit import JobFactory
from tunewise.server.config import ServerConfig
from tunewise.server.context import ServerContext
from tunewise.server.errors import BodySizeLimit, install_error_handlers
from tunewise.server.openapi import ERROR_RESPONSES, install_openapi

log = logging.getLogger("tunewise.server")
MULTIPART_OVERHEAD = 1 << 16  # form boundaries and headers around a file's bytes


class PathBodyLimits:
    """Body-size limits by route: files and upload parts may be large, everything else is JSON."""

    def __init__(self, app: Any, *, default: int, by_prefix: dict[str, int]):
        self.default = BodySizeLimit(app, default)
        self.by_prefix = [(prefix, BodySizeLimit(app, limit)) for prefix, limit in by_prefix.items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        for prefix, limited in self.by_prefix:
            if path.startswith(prefix):
                await limited(scope, receive, send)
                return
        await self.default(scope, receive, send)


def job_settings(config: ServerConfig) -> JobSettings:
    jobs = config.jobs
    return JobSettings(home=config.workspace_path(), files_url=config.files_url, models=dict(config.models),
                       supervised_method=jobs.supervised_method, checkpoint_every_steps=jobs.checkpoint_every_steps,
                       checkpoints_kept=jobs.checkpoints_kept, evaluate=jobs.evaluate, tracking=jobs.tracking,
                       max_retries=jobs.max_retries, retry_backoff_s=jobs.retry_backoff_seconds,
                       stop_grace_s=jobs.stop_grace_seconds, max_upload_bytes=config.limits.max_upload_bytes)


def build_context(config: ServerConfig, *, policy: SchedulingPolicy | None = None,
                  executor: Executor | None = None) -> ServerContext:
    """Everything the app runs on; `policy` and `executor` replace the configured ones (tests, benchmarks)."""
    settings = job_settings(config)
    policy = policy or load_policy(config.scheduling)
    settings.priority_classes = dict(policy.priority_classes)
    settings.default_priority_class = policy.default_priority_class
    settings.pools = tuple(p.name for p in policy.pools)
    settings.default_pool = settings.pools[0]
    db = Database(config.database_url or default_url(settings.home))
    blobs = BlobStore(settings.files_root)
    executor = executor or make_executor(config.executor.kind, **config.executor.options)
    from tunewise.jobs.webhooks import WebhookSender

    webhooks = WebhookSender(db, config.webhooks)
    controller = Controller(db, settings, blobs, executor, policy, notify=webhooks.enqueue,
                            tick_s=config.tick_seconds, min_examples=config.jobs.min_examples)
    ctx = ServerContext(config=config, db=db, settings=settings, blobs=blobs, factory=JobFactory(settings, blobs),
                        controller=controller, extras={"webhooks": webhooks})
    controller.side_work.append(webhooks.deliver_due)
    from tunewise.jobs.triggers import TriggerRunner

    triggers = TriggerRunner(ctx.db, ctx.factory, controller)
    ctx.extras["triggers"] = triggers
    controller.side_work.append(triggers.fire_due)
    return ctx


def create_app(config: ServerConfig | None = None, *, policy: SchedulingPolicy | None = None,
               executor: Executor | None = None, run_loop: bool = True) -> FastAPI:
    """The control plane's FastAPI app. `run_loop=False` leaves the scheduling loop to the caller."""
    config = config or ServerConfig()
    ctx = build_context(config, policy=policy, executor=executor)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if run_loop:
            ctx.controller.start()
        try:
            yield
        finally:
            ctx.controller.stop()
            ctx.extras["webhooks"].close()
            engine = ctx.extras.get("serving")
            if engine is not None:
                engine.close()

    app = FastAPI(title="tunewise control plane", version=_version(), lifespan=lifespan,
                  description="OpenAI-compatible fine-tuning API (files, uploads, fine_tuning) and tunewise's "
                  "native API (/api) on your own hardware.")
    app.state.ctx = ctx
    install_error_handlers(app)
    _include_routers(app)
    install_openapi(app)
    from tunewise.server.serving import mount_serving

    mount_serving(app, ctx)
    if config.portal.enabled:
        from tunewise.web import mount_portal

        mount_portal(app)
    limits = config.limits
    app.add_middleware(PathBodyLimits, default=limits.max_request_bytes,
                       by_prefix={"/v1/files": limits.max_file_bytes + MULTIPART_OVERHEAD,
                                  "/v1/uploads": limits.max_part_bytes + MULTIPART_OVERHEAD})
    return app


def _include_routers(app: FastAPI) -> None:
    from tunewise.server import (files, fine_tuning, native, native_plan, native_runs, native_serving, sessions,
                                 uploads)

    @app.get("/health", tags=["tunewise"], summary="Liveness check (no key needed)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # native_runs before native: its /api/runs/compare must not be read as the run of a job "compare".
    for module in (files, uploads, fine_tuning, sessions, native_plan, native_runs, native_serving, native):
        app.include_router(module.router, responses=ERROR_RESPONSES)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunewise")
    except PackageNotFoundError:
        return "0"
