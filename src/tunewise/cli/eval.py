"""`tunewise eval RUN` and `tunewise report RUN`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.cli._common import console, print_json


def _spec_with_overrides(run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """The run's spec.yaml as a dict, with `--set` overrides applied to its eval section."""
    from tunewise.eval.runs import read_spec_dict
    from tunewise.spec import apply_overrides

    spec = read_spec_dict(run_dir)
    section = dict(spec.get("eval") or {})
    plain = []
    for item in overrides:
        key, _, value = item.removeprefix("eval.").partition("=")
        if key.startswith("gate.") and value:  # gate keys hold dots themselves: gate.forgetting.ppl_increase
            section["gate"] = {**(section.get("gate") or {}), key[len("gate."):]: value.strip()}
        else:
            plain.append(f"eval.{item.removeprefix('eval.')}")
    spec["eval"] = apply_overrides({"eval": section}, plain)["eval"]
    return spec


def _print_report(report: Any, verdict: Any) -> None:
    from rich.table import Table

    table = Table(title=f"evaluation of {report.run} ({report.n_examples} held-out examples)")
    for column in ("metric", "base", "fine-tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    gain = report.gain

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    for key, value in report.metrics.items():
        table.add_row(key, fmt(report.base_metrics.get(key)), fmt(value), fmt(gain.get(key)))
    if report.forgetting:
        f = report.forgetting
        table.add_row("general-text ppl", fmt(f.text_ppl_base), fmt(f.text_ppl_tuned),
                      "-" if f.ppl_increase is None else f"{f.ppl_increase:+.1%}")
        table.add_row("general-question acc", fmt(f.qa_accuracy_base), fmt(f.qa_accuracy_tuned),
                      "-" if f.qa_accuracy_drop is None else f"{-f.qa_accuracy_drop:+.1%}")
    console.print(table)
    if report.judge:
        j = report.judge
        console.print(f"judge {j.judge}: win-rate {j.win_rate:.1%} (95% CI {j.ci_low:.1%}-{j.ci_high:.1%}, n={j.n})")
    if report.spectrum:
        s = report.spectrum
        console.print(f"adapter spectrum: r={s.r}, median rank for 90% energy {s.median_rank_90:g}, suggested r {s.suggested_r}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    style = "green" if verdict.passed else "red"
    console.print(f"[{style}]gate {verdict.summary()}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel=_panels.EVALUATE)
    def eval_command(
        run: str = typer.Argument(..., help="Run directory or name under the workspace's runs/."),
        as_json: bool = typer.Option(False, "--json", help="Print the report and verdict as JSON."),
        max_examples: int | None = typer.Option(None, help="Held-out examples to use (overrides eval.max_examples)."),
        override: list[str] = typer.Option([], "--set", "-s", help="Override an eval option: max_new_tokens=32."),
    ) -> None:
        """Evaluate a trained run against its base; write eval.json and gate.json (exit 1 if the gate fails)."""
        from tunewise.eval.gate import run_gate
        from tunewise.eval.runner import evaluate_run, write_results
        from tunewise.eval.runs import resolve_run_dir
        from tunewise.eval.spec import eval_spec_of
        from tunewise.logs import routed, run_log_path

        run_dir = resolve_run_dir(run)
        overrides = list(override) + ([f"max_examples={max_examples}"] if max_examples else [])
        spec = _spec_with_overrides(run_dir, overrides)
        espec = eval_spec_of(spec)
        with routed(run_log_path(run_dir)):  # other libraries' output to the run's log file
            report = evaluate_run(run_dir, spec)
            verdict = run_gate(report, espec)
            write_results(run_dir, report, verdict)
            _log_to_tracking(run_dir, report, verdict)
        if as_json:
            print_json({"report": report.to_json(), "gate": verdict.model_dump(mode="json")})
        else:
            _print_report(report, verdict)
        if not verdict.passed:
            raise SystemExit(1)  # typer.Exit's code is dropped under standalone_mode=False

    @app.command("report", rich_help_panel=_panels.EVALUATE)
    def report_command(
        run: str = typer.Argument(..., help="Run directory or name."),
        out: Path | None = typer.Option(None, help="Where to write the HTML (default <run>/report.html)."),
        as_json: bool = typer.Option(False, "--json", help="Print the written path as JSON."),
    ) -> None:
        """Write a self-contained HTML report of a run (plots embedded)."""
        from tunewise.eval.html_report import write_report

        path = write_report(run, out)
        if as_json:
            print_json({"report": str(path)})
        else:
            console.print(f"report written to {path}", highlight=False)


def _log_to_tracking(run_dir: Path, report: Any, verdict: Any) -> None:
    """Add the evaluation to the run's MLflow run, when the run was tracked."""
    from tunewise.tracking import log_artifacts, log_eval, resume_run

    handle = resume_run(run_dir)
    if handle is None:
        return
    log_eval(handle, report, verdict)
    log_artifacts(handle, [run_dir / "eval.json", run_dir / "gate.json"])
