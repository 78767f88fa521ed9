"""`tunewise data ...`: check a dataset before training."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from tunewise.cli import _panels
from tunewise.spec import BUNDLED_MODEL, FORMAT_NAMES, DataSpec

data_app = typer.Typer(help="Check datasets: format, invalid rows, duplicates, token lengths; list the formats.",
                       no_args_is_help=True)

FormatName = Enum("FormatName", {name: name for name in FORMAT_NAMES}, type=str)


class OnInvalid(str, Enum):
    fail = "fail"
    drop = "drop"


class OnTooLong(str, Enum):
    drop = "drop"
    truncate = "truncate"


@data_app.command("validate", rich_help_panel=_panels.DATA)
def validate(
    file: Path = typer.Argument(..., help="Data file: .jsonl, .json, .csv or .parquet."),
    format: FormatName | None = typer.Option(None, "--format", help="Force a format instead of detecting it."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_length: int = typer.Option(
        DataSpec.model_fields["max_length"].default, "--max-length", min=8, help="Longest example in tokens."
    ),
    on_too_long: OnTooLong = typer.Option(OnTooLong.drop, "--on-too-long", help="What training would do with longer examples."),
    model: str = typer.Option(BUNDLED_MODEL, "--model", help="Base model whose tokenizer measures lengths."),
    tokenize: bool = typer.Option(True, "--tokenize/--no-tokenize", help="Measure token lengths (loads the tokenizer)."),
    dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Look for exact and near duplicates."),
    near_dup_threshold: float = typer.Option(
        DataSpec.model_fields["near_dup_threshold"].default, "--near-dup-threshold", min=0.01, max=1.0,
        help="MinHash Jaccard similarity that counts as a near duplicate.",
    ),
    on_invalid: OnInvalid = typer.Option(OnInvalid.fail, "--on-invalid", help="fail: invalid rows are errors; drop: skip and list them."),
) -> None:
    """Validate a data file and print what training would use; exits 1 when it has errors."""
    from tunewise.cli._common import console, print_json
    from tunewise.data import render_report, validate_file

    tokenizer = None
    if tokenize:
        from tunewise.models import resolve_base_model
        from tunewise.models.load import load_tokenizer

        tokenizer = load_tokenizer(resolve_base_model(model))
    report = validate_file(
        file,
        format=format.value if format else None,
        tokenizer=tokenizer,
        max_length=max_length if tokenizer is not None else None,
        on_too_long=on_too_long.value,
        dedup=dedup,
        near_dup_threshold=near_dup_threshold,
        on_invalid=on_invalid.value,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        render_report(report, console)
    if not report.ok:
        # SystemExit, not typer.Exit: cli.main runs the app with standalone_mode=False, which turns
        # typer.Exit into a return value that main does not pass on.
        raise SystemExit(1)


@data_app.command("formats", rich_help_panel=_panels.DATA)
def formats(
    name: FormatName | None = typer.Argument(
        None, help="Show one format's variants in full: fields, dropped fields, an example row."),
    as_json: bool = typer.Option(False, "--json", help="Print every format and variant as JSON."),
) -> None:
    """List the data formats and their variants: who writes each shape, its keys, the methods that train on it."""
    from tunewise.cli._common import console, print_json
    from tunewise.data.formats import describe_formats
    from tunewise.data.formats_view import render_format_detail, render_formats

    described = describe_formats()
    if name is not None:
        described = [f for f in described if f["name"] == name.value]
    if as_json:
        print_json(described)
    elif name is not None:
        render_format_detail(described[0], console)
    else:
        render_formats(described, console)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data", rich_help_panel=_panels.DATA)
