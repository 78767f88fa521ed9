"""Rich rendering of a DataReport for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunewise.data.report import DataReport

SHOWN_PROBLEMS = 50  # per list; --json has them all


def render_report(report: DataReport, console: Console | None = None, *, limit: int = SHOWN_PROBLEMS) -> None:
    """Print the report: format, counts, token stats, duplicates, dropped rows and errors.

    Problem lines are printed without wrapping so each `file:line` stays whole for editors and grep.
    """
    console = console or Console()
    status = Text("OK", style="bold green") if report.ok else Text(f"{len(report.errors)} error(s)", style="bold red")
    console.print(Text.assemble(("data ", "bold"), (report.file, "cyan"), "  ", status), soft_wrap=True)
    console.print(_summary_table(report))
    _print_fields(console, report)
    _print_problems(console, "errors", [str(p) for p in report.errors], "red", limit)
    _print_problems(console, "dropped", [str(p) for p in report.dropped], "yellow", limit)
    dups = [f"{report.file}:{d['line']}: exact duplicate of line {d['duplicate_of']}" for d in report.exact_duplicates]
    dups += [
        f"{report.file}:{d['line']}: near duplicate of line {d['duplicate_of']} (similarity {d['similarity']})"
        for d in report.near_duplicates
    ]
    _print_problems(console, "duplicates removed", dups, "dim", limit)
    for warning in report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


def _summary_table(report: DataReport) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    how = "detected" if report.format_detected else "given"
    fmt = f"{report.format_label}, {how}" if report.format else "unknown"
    if report.preference_kind:
        fmt += f", {report.preference_kind}"
    table.add_row("format", fmt)
    if len(report.variants) > 1:
        table.add_row("variants", ", ".join(f"{name} {count}" for name, count in report.variants.items()))
    if report.variant:
        table.add_row("source", report.sources[report.variant])
    if report.tool_rendering:
        table.add_row("tools", f"rendered by the {report.tool_rendering}" if report.tool_rendering == "chat template"
                      else f"rendered as {report.tool_rendering}")
    table.add_row("rows", f"{report.rows_read} read, {report.rows_kept} kept")
    invalid = len([p for p in report.errors if not p.fatal]) + len([p for p in report.dropped if p.field != "(length)"])
    table.add_row("invalid", str(invalid))
    table.add_row("duplicates", f"{len(report.exact_duplicates)} exact, {len(report.near_duplicates)} near")
    if report.token_lengths:
        stats = report.token_stats()
        table.add_row("tokens", "  ".join(f"{k} {v:g}" for k, v in stats.items()))
    if report.max_length:
        table.add_row("too long", f"{report.too_long} over {report.max_length} tokens ({report.too_long_action})")
    if report.masking:
        table.add_row("loss mask", f"assistant turns only ({report.masking})")
    if report.train_rows is not None:
        split = f"{report.train_rows} train, {report.validation_rows} validation ({report.validation_source})"
        if report.mixed_rows:
            split += f"; {report.mixed_rows} train rows mixed in from {report.mix_file}"
        table.add_row("split", split)
    return table


def _print_fields(console: Console, report: DataReport) -> None:
    """How each source field was read, and the fields no variant of the file reads."""
    if report.field_mapping:
        console.print(Text("fields:", style="bold"))
        for path, meaning in report.field_mapping.items():
            console.print(Text.assemble("  ", (path, "cyan"), f": {meaning}"), soft_wrap=True)
    if report.unused_fields:
        console.print(Text(f"unused fields ({len(report.unused_fields)}):", style="bold yellow"))
        for path, seen in report.unused_fields.items():
            line = f"  {path}: in {seen['rows']} row(s), first at {report.file}:{seen['first_line']}; not read"
            console.print(Text(line), soft_wrap=True)


def _print_problems(console: Console, title: str, lines: list[str], style: str, limit: int) -> None:
    if not lines:
        return
    console.print(Text(f"{title} ({len(lines)}):", style=f"bold {style}"))
    for line in lines[:limit]:
        console.print(Text(f"  {line}"), soft_wrap=True)
    if len(lines) > limit:
        console.print(Text(f"  ... and {len(lines) - limit} more (use --json for all)"))
