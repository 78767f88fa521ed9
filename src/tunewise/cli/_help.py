"""How `tunewise ... --help` reads: every name whole at 80 columns, commands in lifecycle order.

typer's rich help lays an option out in five columns (name, short name, negative name, type, help)
and, in an 80-column terminal, squeezes the names into `--mean-example-t…`. Here an option is two
cells: its flags and value type, as click's `get_help_record` writes them, and its help. A name
wider than the name column gets a line of its own with the help below it, so no name is ever cut.

Commands are grouped in their `rich_help_panel` (cli/_panels.py), panels in `_panels.ORDER`, and
inside a panel in `_panels.COMMAND_ORDER`, then in the order their module registered them. Only
this module knows typer's classes: `adopt(app)` hands every command and group of the app, also
those registered by modules written later, to the classes below.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.highlighter import RegexHighlighter
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.theme import Theme
from typer.core import TyperCommand, TyperGroup

from tunewise.cli import _panels

DEFAULT_PANEL = "Commands"
NAME_COLUMN_MAX = 30  # the name column at 80 columns and below: 30 characters leave the help 42
NAME_COLUMN_SHARE = 0.4  # wider terminals: the name column takes up to this share of the panel


class _Highlighter(RegexHighlighter):
    highlights = [
        r"(^|[\s,(/])(?P<switch>-[A-Za-z0-9])(?![\w-])",
        r"(^|[\s,(/])(?P<option>--[\w-]+)",
        r"(?P<metavar><[^>]+>)",
        r"(?P<usage>^Usage: )",
    ]


_THEME = Theme({"option": "bold cyan", "switch": "bold green", "metavar": "bold yellow", "usage": "yellow"})
_highlight = _Highlighter()


def lifecycle_key(command: Any, registered_at: int) -> tuple[int, int, int]:
    """Where a command sorts in `tunewise --help`: its panel, its place in the panel, then registration."""
    panel = getattr(command, "rich_help_panel", None)
    panel_rank = _panels.ORDER.index(panel) if panel in _panels.ORDER else len(_panels.ORDER)
    name = command.name or ""
    command_rank = _panels.COMMAND_ORDER.index(name) if name in _panels.COMMAND_ORDER else len(_panels.COMMAND_ORDER)
    return panel_rank, command_rank, registered_at


class TunewiseCommand(TyperCommand):
    """A typer command whose --help is rendered by `render_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        render_help(self, ctx)


class TunewiseGroup(TyperGroup):
    """A typer group whose subcommands list in lifecycle order and whose --help is rendered by `render_help`."""

    def list_commands(self, ctx: Any) -> list[str]:
        registered = list(self.commands)
        return sorted(registered, key=lambda name: lifecycle_key(self.commands[name], registered.index(name)))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        render_help(self, ctx)


def _unset(value: Any) -> Any:
    return getattr(value, "value", value)  # typer wraps defaults in DefaultPlaceholder(.value)


def adopt(app: typer.Typer) -> None:
    """Give every command and group of `app` (recursively) the classes above, unless it chose its own."""
    for info in app.registered_commands:
        if _unset(info.cls) in (None, TyperCommand):
            info.cls = TunewiseCommand
    for group in app.registered_groups:
        own = _unset(group.cls) or _unset(getattr(group.typer_instance.info, "cls", None))
        if own in (None, TyperGroup):
            group.cls = TunewiseGroup
        adopt(group.typer_instance)


# --- rendering -----------------------------------------------------------------------------------


def render_help(command: Any, ctx: Any) -> None:
    """Print the help of `command` to stdout, wrapped to the terminal (COLUMNS), 80 columns when piped."""
    console = Console(theme=_THEME, highlighter=_highlight)
    console.print(Padding(_highlight(Text(command.get_usage(ctx))), 1), style="bold")
    if command.help:
        console.print(Padding(_description(command.help), (0, 1, 1, 1)))
    panels: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        default = "Arguments" if param.param_type_name == "argument" else "Options"
        panels.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(record)
    for title in sorted(panels, key=lambda t: (t != "Arguments", t != "Options")):
        console.print(_records_panel(title, panels[title], console))
    if hasattr(command, "list_commands"):
        for title, rows in _command_panels(command, ctx).items():
            console.print(_records_panel(title, rows, console, fit_names=True))
    if command.epilog:
        console.print(Padding(Text(inspect.cleandoc(command.epilog)), 1))


def _paragraphs(text: str) -> list[str]:
    """Help text as paragraphs: blank lines separate them, single line breaks are spaces; `\\f` ends it."""
    text = inspect.cleandoc(text).partition("\f")[0]
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def _description(help_text: str) -> RenderableType:
    first, *rest = _paragraphs(help_text) or [""]
    parts: list[RenderableType] = [_highlight(Text(first))]
    for paragraph in rest:
        parts += [Text(""), _highlight(Text(paragraph, style="dim"))]
    return Group(*parts)


def _command_panels(group: Any, ctx: Any) -> dict[str, list[tuple[str, str]]]:
    panels: dict[str, list[tuple[str, str]]] = {}
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        summary = (_paragraphs(sub.short_help or sub.help or "") or [""])[0]
        if sub.deprecated:
            summary = f"(deprecated) {summary}"
        panels.setdefault(getattr(sub, "rich_help_panel", None) or DEFAULT_PANEL, []).append((name, summary))
    return panels


def _records_panel(title: str, records: list[tuple[str, str]], console: Console, *, fit_names: bool = False) -> Panel:
    """(name, help) rows in a titled box. Names never wrap: one wider than the name column (at most
    NAME_COLUMN_SHARE of the box, NAME_COLUMN_MAX at 80 columns) takes a line of its own.
    `fit_names`: the column takes the longest name instead (command names are short)."""
    inner = max(console.width - 4, 20)  # the box's border and padding
    longest = max(len(name) for name, _ in records)
    cap = longest if fit_names else max(NAME_COLUMN_MAX, int(inner * NAME_COLUMN_SHARE))
    name_width = min(longest, cap, inner // 2 if not fit_names else inner)
    help_width = inner - name_width - 2
    rows: list[RenderableType] = []
    for name, help_text in records:
        text = _help_cell(help_text, help_width, console)
        if len(name) > name_width:
            rows.append(_highlight(Text(name, overflow="fold")))  # folds only past the whole box
            rows.append(_row(Text(""), text, name_width))
        else:
            rows.append(_row(_highlight(Text(name, no_wrap=True)), text, name_width))
    return Panel(Group(*rows), title=title, title_align="left", border_style="dim")


def _help_cell(help_text: str, width: int, console: Console) -> Text:
    """The help, with click's trailing `[default: ...; required]` kept whole: on the help's last
    line when it fits there, else on a line of its own."""
    body, sep, extras = help_text.rpartition("  [")
    if not sep or not extras.endswith("]"):
        return _highlight(Text(help_text))
    extras = "[" + extras
    last_line = body and Text(body).wrap(console, width)[-1].plain.rstrip()
    joint = "  " if body and len(last_line) + 2 + len(extras) <= width else ("\n" if body else "")
    text = _highlight(Text(body))
    text.append(joint)
    text.append(extras, style="dim")
    return text


def _row(label: Text, text: Text, name_width: int) -> Table:
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(width=name_width, no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_row(label, text)
    return grid
