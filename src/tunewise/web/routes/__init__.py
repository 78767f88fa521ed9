"""The portal's routes, one module per area; `routers()` lists them in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from tunewise.web.routes import auth, jobs, new_job, ops, playground, registry, runs

    return [auth.router, new_job.router, runs.router, jobs.router, registry.router, playground.router, ops.router]
