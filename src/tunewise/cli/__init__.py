"""The `tunewise` command line.

Every module in this package that defines `register(app)` adds its commands; nothing central is
edited to add a command group. Heavy libraries (torch, transformers) are imported inside the
commands so `tunewise --help` stays instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="tunewise",
    help="Plan the adaptation that fits your budget, then train, evaluate, register and serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register_command_modules() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_command_modules()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns user errors into one clear message and exit code 2."""
    from tunewise.errors import TunewiseError

    try:
        code = app(args=argv, standalone_mode=False)
    except TunewiseError as err:
        err_console.print(f"[bold red]error:[/] {err.message}", highlight=False)
        if err.hint:
            err_console.print(f"  [yellow]hint:[/] {err.hint}", highlight=False)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(1)
        raise
    sys.exit(code or 0)
