"""Charts of evaluation reports, drawn on the server like the loss curves (see `charts`)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from tunewise.web.charts import line_chart

SPECTRUM_MODULES = 6  # lines drawn; the table under the chart lists every module


def short_module(name: str) -> str:
    """`model.layers.1.self_attn.q_proj` as `L1 q_proj`: the legend has room for little."""
    parts = name.split(".")
    layers = [p for p in parts if p.isdigit()]
    return (f"L{layers[-1]} " if layers else "") + parts[-1]


def spectrum_chart(spectrum: dict[str, Any], *, chart_id: str) -> Markup:
    """Singular values of each adapter update (largest first), one line per module: a fast drop means
    the adapter used fewer ranks than it was given."""
    modules = sorted(spectrum.get("modules") or [], key=lambda m: -m.get("rank_90", 0))[:SPECTRUM_MODULES]
    series = [{"label": short_module(m["module"]),
               "points": [[i + 1, v] for i, v in enumerate(m.get("singular_values") or [])]} for m in modules]
    return line_chart(series, chart_id=chart_id, title="Adapter spectrum: singular values per module",
                      x_label="singular value (largest first)", y_label="value", empty="No adapter spectrum")
