"""`tunewise ab report NAME` and `tunewise ab promote NAME`: how the variants of an A/B route fare."""

from __future__ import annotations

from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json

ab_app = typer.Typer(help="A/B rollouts of served model versions: compare variants, promote the winner.",
                     no_args_is_help=True)

_DB_HELP = "Database of answers and feedback (default: the workspace's serving.db)."


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


@ab_app.command("report")
def report(
    name: str = typer.Argument(..., help="The routed name (e.g. support-bot)."),
    database_url: str = typer.Option(None, "--database-url", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per variant: requests, latency p50/p95, tokens, feedback mean with a 95% interval; the winner."""
    from rich.table import Table

    from tunewise.serve.ab_report import route_report
    from tunewise.serve.feedback import ServingStore

    result = route_report(ServingStore(database_url), name)
    if as_json:
        print_json(result)
        return
    if not result["answers"]:
        console.print(f"no answers recorded for {name!r} yet (is it a route of a running `tunewise serve`?)")
        return
    table = Table(title=f"A/B route {name}")
    for column in ("variant", "requests", "p50 s", "p95 s", "tokens", "feedback n", "mean", "95% interval"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in result["variants"]:
        ci = v["feedback_ci95"]
        table.add_row(v["variant"] + (" (shadow)" if v["shadow"] else ""), str(v["requests"]),
                      _fmt(v["latency_p50_s"]), _fmt(v["latency_p95_s"]), str(v["completion_tokens"]),
                      str(v["feedback_count"]), _fmt(v["feedback_mean"]),
                      "-" if ci is None else f"{ci[0]:.3f} .. {ci[1]:.3f}")
    console.print(table)
    console.print(f"[bold]winner:[/] {result['winner'] or 'none yet'} ({result['reason']})", highlight=False)


@ab_app.command("promote")
def promote(
    name: str = typer.Argument(..., help="The routed name."),
    variant: str = typer.Option(None, "--variant", help="Promote this variant (e.g. support-bot:4) instead of "
                                "the measured winner."),
    database_url: str = typer.Option(None, "--database-url", help=_DB_HELP),
) -> None:
    """Move the production alias to the winning variant's version (the registry's gate still applies)."""
    from tunewise.registry import promote as registry_promote
    from tunewise.serve.ab_report import promotion_target, route_report
    from tunewise.serve.feedback import ServingStore

    registered, version = promotion_target(route_report(ServingStore(database_url), name), variant)
    event = registry_promote(registered, version, "production")
    console.print(f"[green]promoted[/] {registered} version {version} to production "
                  f"(was {event.get('from') or 'none'})")


def register(app: typer.Typer) -> None:
    app.add_typer(ab_app, name="ab", rich_help_panel=_panels.SERVE)
