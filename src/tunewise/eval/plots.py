"""Plots as PNG bytes (matplotlib's Agg canvas; no pyplot, no display, no global backend state)."""

from __future__ import annotations

import io
from typing import Any

from tunewise.eval.report import EvalReport, SpectrumReport

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.6, 100  # 640 x 360 pixels
SHARE_METRICS = ("exact_match", "token_f1", "rouge_l", "accuracy", "json_valid")  # bleu, chrf are 0-100


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_curve_png(rows: list[dict[str, Any]]) -> bytes | None:
    """Training and validation loss against optimizer step; None when no loss was logged."""
    series = {key: [(r["step"], r[key]) for r in rows if r.get(key) is not None and "step" in r]
              for key in ("train_loss", "val_loss")}
    if not any(series.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        if series[key]:
            steps, values = zip(*series[key])
            ax.plot(steps, values, style, label=key.replace("_", " "), markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def metrics_png(report: EvalReport) -> bytes | None:
    """Base vs fine-tuned for the metrics on a 0-1 scale."""
    keys = [k for k in SHARE_METRICS if report.metrics.get(k) is not None and report.base_metrics.get(k) is not None]
    if not keys:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    positions = range(len(keys))
    ax.bar([p - 0.2 for p in positions], [report.base_metrics[k] for k in keys], 0.4, label="base")
    ax.bar([p + 0.2 for p in positions], [report.metrics[k] for k in keys], 0.4, label="fine-tuned")
    ax.set_xticks(list(positions), keys)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def spectrum_png(spectrum: SpectrumReport) -> bytes | None:
    """Each module's singular values, normalised by its largest, on a log scale."""
    modules = [m for m in spectrum.modules if m.singular_values and m.singular_values[0] > 0]
    if not modules:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for module in modules:
        top = module.singular_values[0]
        ax.plot(range(1, len(module.singular_values) + 1), [max(v / top, 1e-6) for v in module.singular_values],
                alpha=0.5, linewidth=1)
    from matplotlib.ticker import MaxNLocator

    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.set_title(f"{len(modules)} modules, r={spectrum.r}, median rank for 90% energy: {spectrum.median_rank_90:g}")
    ax.grid(alpha=0.3)
    return _png(fig)
