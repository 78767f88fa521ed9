"""The evaluation gate: thresholds from the spec checked against the report.

A criterion is a dotted metric name (see `EvalReport.flat_metrics`) and a threshold such as
">= 0.8" or "<= 10%" (a percentage is divided by 100, so it bounds a share like ppl_increase).
A metric the report lacks fails its criterion: a gate never passes on a number nobody measured.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from tunewise.eval.report import Criterion, EvalReport, GateVerdict

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_THRESHOLD = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")


def parse_threshold(text: str) -> tuple[str, float]:
    """'>= 0.8' -> ('>=', 0.8); '<= 10%' -> ('<=', 0.1). Raises ValueError naming the accepted forms."""
    match = _THRESHOLD.match(str(text))
    if not match:
        raise ValueError(
            f"threshold {text!r} is not of the form '<op> <number>[%]' with op one of >=, <=, >, <, == "
            "(quote it in YAML: \">= 0.8\")"
        )
    op, number, percent = match.groups()
    value = float(number) / (100.0 if percent else 1.0)
    return op, value


def _gate_criteria(gate_spec: Any) -> Mapping[str, str]:
    if gate_spec is None:
        return {}
    if isinstance(gate_spec, Mapping):
        return gate_spec
    gate = getattr(gate_spec, "gate", None)
    if gate is None and hasattr(gate_spec, "eval"):
        gate = getattr(gate_spec.eval, "gate", None) if gate_spec.eval is not None else None
    return gate or {}


def run_gate(report: EvalReport, gate_spec: Any) -> GateVerdict:
    """Check every criterion of `gate_spec` against `report`.

    gate_spec: a mapping {metric: threshold}, an EvalSpec, or a JobSpec with an `eval` section.
    Returns a verdict listing each criterion with its measured value; it passes when all pass.
    """
    available = report.flat_metrics()
    criteria: list[Criterion] = []
    for key, threshold in _gate_criteria(gate_spec).items():
        op, target = parse_threshold(threshold)
        value = available.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            reason = "not measured" if key in available else _unknown_reason(key, available)
            criteria.append(Criterion(key=key, threshold=threshold, op=op, target=target, value=None,
                                      passed=False, reason=reason))
            continue
        passed = bool(_OPS[op](float(value), target))
        criteria.append(Criterion(key=key, threshold=threshold, op=op, target=target, value=float(value),
                                  passed=passed, reason="" if passed else f"{value:.4g} is not {op} {target:g}"))
    return GateVerdict(
        passed=all(c.passed for c in criteria),
        criteria=criteria,
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _unknown_reason(key: str, available: Mapping[str, Any]) -> str:
    known = ", ".join(sorted(k for k in available if "." not in k or k.startswith(("judge.", "forgetting."))))
    return f"the report has no metric {key!r}; it has: {known}"
