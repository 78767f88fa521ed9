"""`tunewise train`, `tunewise methods`, `tunewise merge`, `tunewise generate`."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json


def _show_spec_warnings() -> None:
    """Spec warnings as one yellow line each; any other warning goes where it went before."""
    from tunewise.spec import SpecWarning

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SpecWarning):
            console.print(f"[yellow]warning:[/] {message}", highlight=False)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", SpecWarning)


def train(
    spec_file: Path = typer.Argument(..., help="Job spec (YAML)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. train.learning_rate=1e-4"),
    restart: bool = typer.Option(False, "--restart", help="Discard an existing run of this spec and start over."),
) -> None:
    """Fine-tune a model as the job spec says. Re-running the same command resumes a killed run."""
    from tunewise.cli import command_argv
    from tunewise.spec import load_spec
    from tunewise.train.allocator import reexecute_under_mimalloc
    from tunewise.train.run import run_training_job
    from tunewise.train.stop import install_stop_handler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shown once, by the process that trains
        device = load_spec(spec_file, overrides or []).train.device
    reexecute_under_mimalloc(command_argv(), device)  # on CPU, the rest runs in a new process
    install_stop_handler()  # SIGTERM: checkpoint at the next step and exit (preemption, pause)
    _show_spec_warnings()
    spec = load_spec(spec_file, overrides or [])
    result = run_training_job(spec, spec_path=spec_file, restart=restart)
    if result.state == "failed":
        console.print(f"[red]failed[/]: {result.run_dir} trained {result.steps} steps but did not pass its gate")
        raise typer.Exit(1)
    console.print(f"[green]done[/]: {result.run_dir} ({result.steps} steps)")


def methods(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the adaptation methods with a one-line description and their defaults."""
    from rich.table import Table

    from tunewise.methods import all_methods

    rows = []
    for m in all_methods():
        defaults = m.config_class().model_dump()
        rows.append({"name": m.name, "kind": m.kind, "description": m.description,
                     "learning_rate": m.default_learning_rate, "artifact": "adapter" if m.adapter else "full model",
                     "defaults": defaults})
    if as_json:
        print_json(rows)
        return
    table = Table(title="tunewise methods")
    for column in ("method", "description", "lr", "artifact", "defaults"):
        table.add_column(column, overflow="fold")
    for r in rows:
        defaults = ", ".join(f"{k}={v}" for k, v in r["defaults"].items())
        table.add_row(r["name"], r["description"], f"{r['learning_rate']:g}", r["artifact"], defaults)
    console.print(table)


def merge(
    run: str = typer.Argument(..., help="Run directory or name."),
    out: Path = typer.Option(..., "--out", help="Directory for the merged standalone model."),
) -> None:
    """Merge an adapter into its base and write a model that transformers loads without peft."""
    from tunewise.models.merge import merge_run

    path = merge_run(run, out)
    console.print(f"[green]merged[/] model written to {path}")


def generate(
    model: str = typer.Argument(..., help="Run directory or name, registered model (NAME, NAME@ALIAS, NAME:VERSION), "
                                "artifact dir, model dir or bundled model name."),
    prompt: str = typer.Option(..., "--prompt", help="User message."),
    system: str = typer.Option(None, "--system", help="Optional system message."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, max=4096),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=5.0),
) -> None:
    """Answer a prompt with a trained run or a base model, using its chat template."""
    from tunewise.models.generate import chat_messages, generate_reply
    from tunewise.models.merge import load_any

    loaded, tokenizer = load_any(model)
    reply = generate_reply(loaded, tokenizer, chat_messages(prompt, system), max_new_tokens=max_new_tokens,
                           temperature=temperature)
    typer.echo(reply)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=_panels.TRAIN)(train)
    app.command(rich_help_panel=_panels.TRAIN)(methods)
    app.command(rich_help_panel=_panels.SERVE)(merge)
    app.command(rich_help_panel=_panels.SERVE)(generate)
