"""Planning: memory, time and cost of each adaptation mode before any GPU is spent.

Public functions (imports stay light: torch loads only when a function needs it):
  plan(...)            -> PlanReport         every mode's memory, GPUs, time, cost; a recommendation
  check_fit(...)       -> FitDecision        for the training loop: refuse a job that cannot fit
  measure_modes(...)   -> list[Measurement]  real steps on this machine, estimate against measurement
  run_diagnosis(...)   -> Diagnosis          RAG or fine-tune? closed-book against retrieved documents
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "plan": "planner",
    "PlanReport": "planner",
    "PlanRefused": "planner",
    "PlanRequest": "request",
    "check_fit": "fit",
    "FitDecision": "fit",
    "measure_modes": "measure",
    "Measurement": "measure",
    "run_diagnosis": "diagnose",
    "Diagnosis": "diagnose",
}
__all__ = ["Diagnosis", "FitDecision", "Measurement", "PlanRefused", "PlanReport", "PlanRequest",
           "check_fit", "measure_modes", "plan", "run_diagnosis"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"tunewise.plan.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tunewise.plan' has no attribute {name!r}")
