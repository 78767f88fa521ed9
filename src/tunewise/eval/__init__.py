"""Evaluation: held-out metrics, judge win-rate, forgetting check, adapter spectrum, and the gate.

Entry points (the training loop calls the first three in order):
    evaluate_run(run_dir, spec) -> EvalReport
    run_gate(report, gate_spec) -> GateVerdict
    write_results(run_dir, report, verdict)      # eval.json, gate.json, status "failed"/"gate"
Imports are lazy so `import tunewise.eval` does not pull in torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "evaluate_run": "tunewise.eval.runner",
    "evaluate_and_gate": "tunewise.eval.runner",
    "write_results": "tunewise.eval.runner",
    "run_gate": "tunewise.eval.gate",
    "parse_threshold": "tunewise.eval.gate",
    "EvalReport": "tunewise.eval.report",
    "GateVerdict": "tunewise.eval.report",
    "read_report": "tunewise.eval.report",
    "read_verdict": "tunewise.eval.report",
    "EvalSpec": "tunewise.eval.spec",
    "JudgeSpec": "tunewise.eval.spec",
    "ForgettingSpec": "tunewise.eval.spec",
    "EvalError": "tunewise.eval.errors",
    "adapter_spectrum": "tunewise.eval.spectrum",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tunewise.eval' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
