"""Every `--help` of the whole command tree reads at 80 columns; commands sit in lifecycle panels, in order.

The tree is walked from the click command typer builds, so command groups added later are checked
without touching this file.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tunewise.cli import _panels, app
from tunewise.cli._help import TunewiseGroup, adopt

WIDTH = 80


def _walk(command, path=()):
    """(path, command) for the command and every subcommand below it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _option_names(command) -> list[str]:
    return [name for param in command.params if not getattr(param, "hidden", False)
            for name in (*param.opts, *param.secondary_opts) if name.startswith("-")]


def _commands():
    return list(_walk(typer.main.get_command(app)))


def test_every_help_in_the_tree_shows_each_option_name_whole_at_80_columns():
    runner = CliRunner()
    commands = _commands()
    assert ("data", "validate") in [path for path, _ in commands]  # subcommands of groups too
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)}, prog_name="tunewise")
        where = "tunewise " + " ".join(path) + " --help"
        assert result.exit_code == 0, f"{where}: {result.output}"
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= WIDTH, f"{where}: a line is wider than {WIDTH} columns"
        assert "…" not in result.output, f"{where}: something is cut off:\n{result.output}"
        for name in [*_option_names(command), "--help"]:
            pattern = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
            assert any(re.search(pattern, line) for line in lines), f"{where}: {name} is not shown whole"


def test_flags_show_no_value_type():
    result = CliRunner().invoke(app, ["plan", "--help"], env={"COLUMNS": str(WIDTH)})
    assert "<bool>" not in result.output
    assert re.search(r"--checkpointing / --no-checkpointing\s", result.output)
    assert "--gradient-checkpointing <auto|on|off>" in result.output


def test_every_command_sits_in_a_lifecycle_panel():
    root = typer.main.get_command(app)
    outside = {name: getattr(cmd, "rich_help_panel", None) for name, cmd in root.commands.items()
               if getattr(cmd, "rich_help_panel", None) not in _panels.ORDER}
    assert not outside, f"commands without a panel of cli/_panels.ORDER: {outside}"


def test_panels_and_commands_follow_the_lifecycle():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": str(WIDTH)})
    titles = re.findall(r"╭─ (.+?) ─", result.output)
    panels = [t for t in titles if t in _panels.ORDER]
    assert panels == sorted(panels, key=_panels.ORDER.index)
    order = re.findall(r"^│ ([a-z][a-z-]+) ", result.output, flags=re.M)
    assert order.index("plan") < order.index("data") < order.index("train") < order.index("eval")
    assert order.index("eval") < order.index("register") < order.index("promote")


def test_commands_of_a_module_never_seen_land_in_their_panel_in_registration_order():
    demo = typer.Typer(cls=TunewiseGroup)
    for name, panel in [("zeta", _panels.SERVE), ("train", _panels.TRAIN), ("alpha", _panels.SERVE),
                        ("unpanelled", None), ("plan", _panels.PLAN), ("mid", _panels.SERVE)]:
        demo.command(name, rich_help_panel=panel)(lambda: None)
    sub = typer.Typer()
    sub.command("list")(lambda: None)
    sub.command("add")(lambda: None)
    demo.add_typer(sub, name="jobs", rich_help_panel=_panels.CONTROL_PLANE)
    adopt(demo)
    root = typer.main.get_command(demo)
    assert root.list_commands(None) == ["plan", "train", "zeta", "alpha", "mid", "jobs", "unpanelled"]
    assert isinstance(root.commands["jobs"], TunewiseGroup)
    assert root.commands["jobs"].list_commands(None) == ["list", "add"]
    output = CliRunner().invoke(demo, ["--help"], env={"COLUMNS": str(WIDTH)}).output
    assert [t for t in re.findall(r"╭─ (.+?) ─", output) if t != "Options"] == [
        "Plan", "Train", "Serve", "Control plane", "Commands"]


@pytest.mark.parametrize("columns", [60, 120])
def test_help_adapts_to_the_terminal_width(columns):
    result = CliRunner().invoke(app, ["plan", "--help"], env={"COLUMNS": str(columns)})
    assert max(len(line) for line in result.output.splitlines()) <= columns
    assert "--gpu-hours-per-week" in result.output
