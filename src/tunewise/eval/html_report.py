"""`tunewise report RUN`: one self-contained HTML file (inline CSS, plots as base64 PNG).

Sections: spec, data summary, loss curves, metrics before/after, gate verdict, forgetting check,
adapter spectrum, before/after samples. A section whose input is missing says so instead of vanishing.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from tunewise.eval.report import EvalReport, GateVerdict, read_report, read_verdict
from tunewise.eval.runs import read_metrics, read_status, resolve_run_dir

REPORT_FILE = "report.html"
_CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f6f6f6} .num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17663a;font-weight:600} .fail{color:#a4161a;font-weight:600} .muted{color:#777}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em} img{max-width:100%}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.4em .8em;margin:.3em 0}
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="muted">No data for the {escape(alt)} plot.</p>'
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _num(value: Any) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_num(c)}</td>' if not isinstance(c, str) else f"<td>{escape(c)}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _section_data(run_dir: Path) -> str:
    path = run_dir / "data_report.json"
    if not path.is_file():
        return '<p class="muted">No data report (data_report.json) in this run.</p>'
    report = json.loads(path.read_text(encoding="utf-8"))
    scalars = [[k, v if isinstance(v, (int, float)) and not isinstance(v, bool) else json.dumps(v)[:200]]
               for k, v in report.items() if not isinstance(v, (dict, list)) or len(json.dumps(v)) <= 200]
    return _table(["field", "value"], scalars)


def _section_metrics(report: EvalReport | None) -> str:
    from tunewise.eval.plots import metrics_png

    if report is None:
        return '<p class="muted">Not evaluated yet: run <code>tunewise eval RUN</code>.</p>'
    gain = report.gain
    rows = [[k, report.base_metrics.get(k), v, gain.get(k)] for k, v in report.metrics.items()]
    out = _table(["metric", "base", "fine-tuned", "change"], rows)
    if report.judge:
        j = report.judge
        out += (f"<p>Judge <b>{escape(j.judge)}</b>: win-rate {j.win_rate:.1%} (95% CI {j.ci_low:.1%}-{j.ci_high:.1%}) "
                f"over {j.n} pairs; {j.wins} wins, {j.losses} losses, {j.ties} ties. First-position share "
                f"{j.first_position_share:.0%} (order randomised).</p>")
    return out + _img(metrics_png(report), "metrics before/after")


def _section_gate(verdict: GateVerdict | None) -> str:
    if verdict is None:
        return '<p class="muted">No gate verdict (gate.json) yet.</p>'
    css = "pass" if verdict.passed else "fail"
    rows = [[c.key, c.threshold, c.value, "pass" if c.passed else f"FAIL {c.reason}"] for c in verdict.criteria]
    table = _table(["criterion", "threshold", "value", "result"], rows) if rows else ""
    return f'<p class="{css}">Gate {escape(verdict.summary())}</p>{table}'


def _section_forgetting(report: EvalReport | None) -> str:
    f = report.forgetting if report else None
    if f is None:
        return '<p class="muted">The forgetting check did not run.</p>'
    rows = [["general-text perplexity", f.text_ppl_base, f.text_ppl_tuned,
             None if f.ppl_increase is None else f"{f.ppl_increase:+.1%}"],
            ["general-question accuracy", f.qa_accuracy_base, f.qa_accuracy_tuned,
             None if f.qa_accuracy_drop is None else f"{-f.qa_accuracy_drop:+.1%}"]]
    rows += [[f"lm-eval {task}", s.get("base"), s.get("tuned"), None] for task, s in f.lm_eval.items()]
    notes = "".join(f'<div class="warn">{escape(n)}</div>' for n in f.notes)
    flag = '<p class="fail">Forgetting flagged.</p>' if f.flagged else '<p class="pass">No forgetting flagged.</p>'
    return flag + _table(["probe", "base", "fine-tuned", "change"], rows) + notes + (
        f'<p class="muted">{f.paragraphs} paragraphs, {f.questions} questions.</p>')


def _section_spectrum(report: EvalReport | None) -> str:
    from tunewise.eval.plots import spectrum_png

    s = report.spectrum if report else None
    if s is None:
        return '<p class="muted">No LoRA-family adapter to diagnose.</p>'
    summary = (f"<p>r={s.r}, {len(s.modules)} modules; median rank for 90% energy {s.median_rank_90:g}, "
               f"median entropy effective rank {s.median_effective_rank:.2f}; suggested r: {_num(s.suggested_r)}.</p>")
    warns = "".join(f'<div class="warn">{escape(w)}</div>' for w in s.warnings)
    return summary + warns + _img(spectrum_png(s), "adapter spectrum")


def _section_samples(report: EvalReport | None) -> str:
    if not report or not report.samples:
        return '<p class="muted">No samples.</p>'
    rows = [[s.prompt, s.reference, s.base or "", s.tuned] for s in report.samples]
    return _table(["prompt", "reference", "base", "fine-tuned"], rows)


def render_report(run: str | Path) -> str:
    """The HTML text of a run's report."""
    from tunewise.eval.plots import loss_curve_png

    run_dir = resolve_run_dir(run)
    status, report, verdict = read_status(run_dir), read_report(run_dir), read_verdict(run_dir)
    spec_path = run_dir / "spec.yaml"
    spec_text = spec_path.read_text(encoding="utf-8") if spec_path.is_file() else "(no spec.yaml)"
    state = status.get("state", "unknown") + (f" ({status['reason']})" if status.get("reason") else "")
    warnings = "".join(f'<div class="warn">{escape(w)}</div>' for w in (report.warnings if report else []))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>tunewise report: {escape(run_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(run_dir.name)}</h1><p>state <b>{escape(state)}</b>, method <b>{escape(str(status.get('method')))}</b>, "
        f"base <b>{escape(str(status.get('base_model')))}</b>, step {_num(status.get('step'))} of {_num(status.get('total_steps'))}</p>",
        warnings,
        "<h2>Gate</h2>", _section_gate(verdict),
        "<h2>Metrics before and after</h2>", _section_metrics(report),
        "<h2>Loss curves</h2>", _img(loss_curve_png(read_metrics(run_dir)), "loss curve"),
        "<h2>Forgetting check</h2>", _section_forgetting(report),
        "<h2>Adapter spectrum</h2>", _section_spectrum(report),
        "<h2>Samples</h2>", _section_samples(report),
        "<h2>Data</h2>", _section_data(run_dir),
        f"<h2>Spec</h2><pre>{escape(spec_text)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the report to `out` (default `<run>/report.html`) and return its path."""
    run_dir = resolve_run_dir(run)
    target = Path(out) if out else run_dir / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(run_dir), encoding="utf-8")
    return target
