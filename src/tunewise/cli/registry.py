"""`tunewise register / promote / rollback / models`: the model registry on MLflow."""

from __future__ import annotations

from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json


def _event_line(event: dict[str, Any]) -> str:
    if event.get("action") == "register":
        return f"{event['when']}  {event['who']}: registered version {event['version']} from run {event.get('run')}"
    return (f"{event['when']}  {event['who']}: {event['action']} {event['alias']} "
            f"{event.get('from') or '(none)'} -> {event['to']}")


def _print_models(models: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not models:
        console.print("no registered models yet: tunewise register RUN --name NAME")
        return
    table = Table()
    for column in ("name", "version", "aliases", "gate", "run", "method", "base model"):
        table.add_column(column)
    for model in models:
        for v in model["versions"]:
            gate_style = {"passed": "green", "failed": "red"}.get(v["gate"], "dim")
            table.add_row(model["name"], v["version"], ", ".join(v["aliases"]), f"[{gate_style}]{v['gate']}[/]",
                          v["run"] or "", v["method"] or "", v["base_model"] or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("register", rich_help_panel=_panels.REGISTRY)
    def register_command(
        run: str = typer.Argument(..., help="Run directory or name."),
        name: str = typer.Option(..., "--name", help="Registered model name."),
        as_json: bool = typer.Option(False, "--json", help="Print the new version as JSON."),
    ) -> None:
        """Register a finished run as a new model version, with lineage and sha256 of every file."""
        from tunewise.registry import register_run

        info = register_run(run, name)
        if as_json:
            print_json(info.to_json())
        else:
            console.print(f"registered {name} version {info.version} (gate: {info.gate}, "
                          f"{len(info.manifest)} files hashed)", highlight=False)

    @app.command("promote", rich_help_panel=_panels.REGISTRY)
    def promote_command(
        name: str = typer.Argument(..., help="Registered model name."),
        version: str = typer.Argument(..., help="Version number."),
        to: str = typer.Option(..., "--to", help="staging or production."),
        as_json: bool = typer.Option(False, "--json", help="Print the recorded event as JSON."),
    ) -> None:
        """Move the staging or production alias to a version (production needs a passed gate)."""
        from tunewise.registry import promote

        event = promote(name, version, to)
        print_json(event) if as_json else console.print(_event_line(event), highlight=False)

    @app.command("rollback", rich_help_panel=_panels.REGISTRY)
    def rollback_command(
        name: str = typer.Argument(..., help="Registered model name."),
        as_json: bool = typer.Option(False, "--json", help="Print the recorded event as JSON."),
    ) -> None:
        """Move production back to the version that held it before."""
        from tunewise.registry import rollback

        event = rollback(name)
        print_json(event) if as_json else console.print(_event_line(event), highlight=False)

    @app.command("models", rich_help_panel=_panels.REGISTRY)
    def models_command(
        name: str | None = typer.Argument(None, help="Show one model with its promotion history."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """List registered models: versions, aliases and gate verdicts."""
        from tunewise.registry import history, list_models

        models = list_models()
        if name is not None:
            models = [m for m in models if m["name"] == name]
            if not models:
                from tunewise.registry import RegistryError

                raise RegistryError(f"no registered model named {name!r}", hint="`tunewise models` lists them")
            models[0]["history"] = history(name)
        if as_json:
            print_json(models)
            return
        _print_models(models)
        for event in models[0].get("history", []) if name else []:
            console.print(_event_line(event), highlight=False)
