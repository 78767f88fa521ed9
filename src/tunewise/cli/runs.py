"""`tunewise runs` and `tunewise compare RUN RUN...`."""

from __future__ import annotations

from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json

# Key metrics and their short column headers (the table has to fit a terminal; --json has every field).
KEY_METRICS = {"exact_match": "EM", "token_f1": "F1", "rouge_l": "RL", "accuracy": "acc",
               "judge.win_rate": "win", "forgetting.ppl_increase": "ppl+"}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _compare_rows(summaries: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    fields = ["state", "reason", "method", "base_model", "step", "train_loss", "val_loss", "gate"]
    rows = [(f, [s.get(f) for s in summaries]) for f in fields]
    metric_keys = sorted({k for s in summaries for k in s["metrics"]})
    for key in metric_keys:
        rows.append((key, [s["metrics"].get(key) for s in summaries]))
        if any(key in s["base_metrics"] for s in summaries):
            rows.append((f"  base {key}", [s["base_metrics"].get(key) for s in summaries]))
    return rows


def register(app: typer.Typer) -> None:
    @app.command("runs", rich_help_panel=_panels.TRAIN)
    def runs_command(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
        """List runs with status, method, losses, key metrics (EM exact match, F1 token F1, RL ROUGE-L,
        acc accuracy, win judge win-rate, ppl+ general-text perplexity change) and gate verdict."""
        from rich.table import Table

        from tunewise.eval.runs import list_runs, summarize_run

        summaries = [summarize_run(p) for p in list_runs()]
        if as_json:
            print_json(summaries)
            return
        if not summaries:
            console.print("no runs yet: tunewise train SPEC")
            return
        shown = [k for k in KEY_METRICS if any(k in s["metrics"] for s in summaries)]
        table = Table()
        table.add_column("run", overflow="fold")
        for column in ["state", "method", "step", "loss", "val", *[KEY_METRICS[k] for k in shown], "gate"]:
            table.add_column(column)
        for s in summaries:
            state = s["state"] + (f":{s['reason']}" if s.get("reason") else "")
            step = f"{_fmt(s['step'])}/{_fmt(s['total_steps'])}"
            table.add_row(s["name"], state, _fmt(s["method"]), step, _fmt(s["train_loss"], 3), _fmt(s["val_loss"], 3),
                          *[_fmt(s["metrics"].get(k), 3) for k in shown], _fmt(s["gate"]))
        console.print(table)

    @app.command("compare", rich_help_panel=_panels.EVALUATE)
    def compare_command(
        runs: list[str] = typer.Argument(..., help="Two or more run directories or names."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Show runs side by side: status, losses, every eval metric (base values too) and the gate."""
        from rich.table import Table

        from tunewise.eval.runs import resolve_run_dir, summarize_run

        summaries = [summarize_run(resolve_run_dir(r)) for r in runs]
        if as_json:
            print_json(summaries)
            return
        table = Table()
        table.add_column("")
        for s in summaries:
            table.add_column(s["name"], justify="right")
        for label, values in _compare_rows(summaries):
            table.add_row(label, *[_fmt(v) for v in values])
        console.print(table)
