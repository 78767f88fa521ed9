"""Registry fixtures: runs of the tiny model with a gate verdict, in a workspace whose MLflow store is
a copy of one migrated once per session (migrating a SQLite MLflow store takes seconds)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_FACTORY = Path(__file__).parents[1] / "eval" / "runfactory.py"


def _load_runfactory():
    if "runfactory" in sys.modules:
        return sys.modules["runfactory"]
    spec = importlib.util.spec_from_file_location("runfactory", _FACTORY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["runfactory"] = module
    spec.loader.exec_module(module)
    return module


runfactory = _load_runfactory()


@pytest.fixture
def registry_home(workspace, mlflow_template, monkeypatch) -> Path:
    """This test's workspace with a ready, empty MLflow store, acting as user alice."""
    runfactory.install_mlflow_store(mlflow_template, workspace)
    monkeypatch.setenv("TUNEWISE_USER", "alice")
    return workspace


@pytest.fixture
def gated_run(registry_home, tiny_model_dir):
    """make(name, gate="passed" | "failed" | None) -> run directory with eval.json and gate.json."""
    from tunewise.eval import run_gate, write_results
    from tunewise.eval.report import EvalReport
    from tunewise.workspace import runs_dir

    def make(name: str, gate: str | None = "passed", seed: int = 0) -> Path:
        run_dir = runfactory.make_lora_run(runs_dir(), name, tiny_model_dir, seed=seed)
        if gate is not None:
            score = 0.9 if gate == "passed" else 0.2
            report = EvalReport(run=name, created_at="now", base_model=str(tiny_model_dir), method="lora",
                                metrics={"exact_match": score}, base_metrics={"exact_match": 0.1})
            write_results(run_dir, report, run_gate(report, {"exact_match": ">= 0.8"}))
        return run_dir

    return make
