"""Tiny LoRA adapters and registered versions for the serving tests, on the tiny random Llama."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_FACTORY = Path(__file__).parents[2] / "unit" / "eval" / "runfactory.py"


def runfactory() -> Any:
    if "runfactory" not in sys.modules:
        spec = importlib.util.spec_from_file_location("runfactory", _FACTORY)
        module = importlib.util.module_from_spec(spec)
        sys.modules["runfactory"] = module
        spec.loader.exec_module(module)
    return sys.modules["runfactory"]


def make_adapter_run(runs_root: Path, name: str, base_dir: Path, *, seed: int, r: int = 4, noise: float = 0.4,
                     targets: Any = "all-linear") -> Path:
    """A finished run whose artifact is a LoRA adapter with random non-zero B (so it answers differently
    from the base and from other adapters), registrable like a trained one."""
    return runfactory().make_lora_run(runs_root, name, base_dir, r=r, noise=noise, seed=seed, targets=targets)


def pass_gate(run_dir: Path, base_dir: Path) -> None:
    """Give a run a passed evaluation gate, so its registered version may become production."""
    from tunewise.eval import run_gate, write_results
    from tunewise.eval.report import EvalReport

    report = EvalReport(run=run_dir.name, created_at="now", base_model=str(base_dir), method="lora",
                        metrics={"exact_match": 0.9}, base_metrics={"exact_match": 0.1})
    write_results(run_dir, report, run_gate(report, {"exact_match": ">= 0.8"}))
