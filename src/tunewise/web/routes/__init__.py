"""The portal's routes, one module per area; `routers()` lists them in the order they are mounted.

An area is a module `tunewise.web.routes.<name>` with a `router`. Areas listed here that are not
part of this installation are skipped, so one area's pages can ship without the others.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

# Order matters where paths overlap: a fixed path (/jobs/compare) before a parameter (/jobs/{job_id}).
AREAS = ("auth", "diagnose", "new_job", "runs", "jobs", "registry", "playground", "ops")


def routers() -> list[APIRouter]:
    found = []
    for area in AREAS:
        name = f"{__name__}.{area}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name != name:
                raise  # the area exists but something it imports is missing: a real error
            continue
        found.append(module.router)
    return found
