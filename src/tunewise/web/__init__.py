"""The web portal: server-rendered pages over the REST API, served by `tunewise server` at `/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount_portal(app: FastAPI) -> None:
    """Add the portal's pages, form actions and static files to the control plane's `app`.

    Mounted after the API routes, so a page path never shadows an API route.
    """
    from tunewise.web.routes import routers

    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="portal-static")
