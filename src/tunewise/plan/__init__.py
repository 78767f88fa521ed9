"""Planning: memory, time and cost of each adaptation mode before any GPU is spent.

Public functions (imports stay light: torch loads only when a function needs it):
  plan(...)       -> PlanReport      every mode's memory, GPUs, time, cost; a recommendation
  check_fit(...)  -> FitDecision     for the training loop: refuse a job that cannot fit
  measure(...)    -> list[Measurement]  real steps on this machine, estimate against measurement
  diagnose(...)   -> Diagnosis       RAG or fine-tune? closed-book against retrieved documents
"""

from __future__ import annotations

from typing import Any

__all__ = ["plan", "check_fit", "FitDecision", "measure", "diagnose", "PlanRequest"]


def __getattr__(name: str) -> Any:
    if name in ("plan", "PlanReport", "PlanRefused"):
        from tunewise.plan import planner

        return getattr(planner, name)
    if name == "PlanRequest":
        from tunewise.plan.request import PlanRequest

        return PlanRequest
    if name in ("check_fit", "FitDecision"):
        from tunewise.plan import fit

        return getattr(fit, name)
    if name in ("measure", "Measurement"):
        from tunewise.plan import measure

        return getattr(measure, name if name != "measure" else "measure_modes")
    if name in ("diagnose", "Diagnosis"):
        from tunewise.plan import diagnose

        return getattr(diagnose, name if name != "diagnose" else "run_diagnosis")
    raise AttributeError(f"module 'tunewise.plan' has no attribute {name!r}")
