"""`tunewise keys create|list|revoke`: API keys per team, on the server's job store."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json

keys_app = typer.Typer(help="API keys per team: random, shown once, stored hashed.", no_args_is_help=True)
_CONFIG = typer.Option(None, "--config", help="Server config (YAML) naming the job store; default: the workspace's.")


def _database(config: Path | None):
    from tunewise.jobs.store.db import Database, default_url
    from tunewise.server.config import load_config

    cfg = load_config(config)
    return Database(cfg.database_url or default_url(cfg.workspace_path()))


@keys_app.command("create")
def create(team: str = typer.Option(None, "--team", help="Team the key acts for."),
           admin: bool = typer.Option(False, "--admin", help="An admin key: sees and manages every team."),
           name: str = typer.Option(None, "--name", help="A label to tell keys apart."),
           config: Path = _CONFIG) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from tunewise.errors import SpecError
    from tunewise.jobs import keys

    if not admin and not team:
        raise SpecError("--team: name the team the key is for (or --admin for an admin key)")
    db = _database(config)
    with db.session() as session:
        made = keys.create_key(session, team or keys.ADMIN_TEAM, name=name, admin=admin)
    console.print(f"key for team [bold]{made.team}[/] ({made.id}); shown once:", highlight=False)
    typer.echo(made.key)


@keys_app.command("list")
def list_keys(team: str = typer.Option(None, "--team", help="Only this team's keys."),
              as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
              config: Path = _CONFIG) -> None:
    """List keys: id, team, prefix, created, revoked (never the key)."""
    from rich.table import Table

    from tunewise.jobs import keys

    with _database(config).session() as session:
        rows = [{"id": k.id, "team": k.team, "name": k.name, "prefix": k.prefix, "admin": k.is_admin,
                 "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys.list_keys(session, team)]
    if as_json:
        print_json(rows)
        return
    table = Table(title="API keys")
    for column in ("id", "team", "prefix", "admin", "name", "state"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["id"], r["team"], r["prefix"] + "...", "yes" if r["admin"] else "", r["name"] or "",
                      "revoked" if r["revoked_at"] else "active")
    console.print(table)


@keys_app.command("revoke")
def revoke(key: str = typer.Argument(..., help="Key id (key_...) or its shown prefix (twk_...)."),
           config: Path = _CONFIG) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from tunewise.jobs import keys

    with _database(config).session() as session:
        row = keys.revoke_key(session, key)
    console.print(f"revoked {row.id} (team {row.team})", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys", rich_help_panel=_panels.CONTROL_PLANE)
