"""The `tunewise` command line.

Every module in this package that defines `register(app)` adds its commands, each in one of the
help panels of `_panels.py`; nothing central is edited to add a command group. Heavy libraries (torch, transformers) are imported inside the
commands so `tunewise --help` stays instant.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer
from rich.console import Console

from tunewise.cli._help import TunewiseGroup, adopt
from tunewise.logs import LEVEL_ENV, refresh_console_level, routed

app = typer.Typer(
    name="tunewise",
    help="Plan the adaptation that fits your budget, then train, evaluate and register it.\n\n"
         "What other libraries log goes to the run's run.log, or to $TUNEWISE_HOME/logs/tunewise.log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=TunewiseGroup,
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


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show what other libraries log (transformers, "
                                 "peft, ...) on stderr; it always goes to the log file (TUNEWISE_LOG_LEVEL sets "
                                 "the level)."),
) -> None:
    # The app's own help text is the Typer's above; this callback only takes the global options.
    if verbose:
        if not os.environ.get(LEVEL_ENV):  # an explicit level wins; a re-executed `train` inherits it
            os.environ[LEVEL_ENV] = "INFO"
        refresh_console_level()


_register_command_modules()
adopt(app)  # every command's --help readable at 80 columns, in lifecycle order


_command_argv: list[str] | None = None


def command_argv() -> list[str] | None:
    """The arguments this process was started with, when it runs as the `tunewise` command; else None."""
    return _command_argv


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns user errors into one clear message and exit code 2."""
    from tunewise.errors import TunewiseError

    global _command_argv
    _command_argv = list(sys.argv[1:]) if argv is None else None

    try:
        with routed():  # other libraries' output to the workspace log; a run switches to its own
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
    except Exception as err:
        _exit_for_unexpected(err)
    sys.exit(code or 0)


def _click_modules() -> list:
    """click's exceptions module(s): typer may vendor its own copy of click beside (or instead of) click."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    return modules


def _exit_for_unexpected(err: Exception) -> None:
    """Usage errors print click's message (exit 2); anything else is one line, the traceback on request."""
    for exceptions in _click_modules():
        # typer's vendored click lacks some of click's classes (Exit): a missing one matches nothing.
        if isinstance(err, getattr(exceptions, "ClickException", ())):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, getattr(exceptions, "Exit", ())):
            sys.exit(err.exit_code)
        if isinstance(err, getattr(exceptions, "Abort", ())):
            sys.exit(1)
    if os.environ.get("TUNEWISE_DEBUG"):
        raise err
    err_console.print(f"[bold red]error:[/] unexpected {type(err).__name__}: {err}", highlight=False)
    err_console.print("  [yellow]hint:[/] this is a bug in tunewise; run again with TUNEWISE_DEBUG=1 for the "
                      "traceback and report it", highlight=False)
    sys.exit(1)
