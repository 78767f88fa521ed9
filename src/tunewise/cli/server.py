"""`tunewise server`: the control plane (REST API, scheduler, executor, serving) in one process."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console


def server(
    config: Path = typer.Option(None, "--config", help="Server config (YAML); every field has a default."),
    host: str = typer.Option(None, "--host", help="Interface to listen on (default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default 8000)."),
    workspace: Path = typer.Option(None, "--workspace", help="Workspace directory (default TUNEWISE_HOME)."),
) -> None:
    """Run the control plane: OpenAI-compatible fine-tuning API, native API, queue and executor."""
    import uvicorn

    from tunewise.jobs import keys
    from tunewise.server.app import create_app
    from tunewise.server.config import load_config

    cfg = load_config(config, {"host": host, "port": port, "workspace": str(workspace) if workspace else None})
    home = cfg.workspace_path()
    os.environ["TUNEWISE_HOME"] = str(home)  # the registry and tracking find the same workspace
    app = create_app(cfg)
    with app.state.ctx.db.session() as session:
        if not keys.has_admin_key(session):
            made = keys.create_key(session, keys.ADMIN_TEAM, name="first admin key", admin=True)
            console.print("[bold]admin key[/] (shown once; keep it): " + made.key, highlight=False)
    console.print(f"tunewise server on http://{cfg.host}:{cfg.port} (workspace {home}, "
                  f"store {app.state.ctx.db.dialect})", highlight=False)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=_panels.CONTROL_PLANE)(server)
