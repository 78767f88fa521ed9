"""Registry fixtures: runs of the tiny model with a gate verdict, and one MLflow store per test module
(creating a SQLite MLflow store takes seconds, so tests in a module share it and use distinct names)."""

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


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("registry-home")


@pytest.fixture
def registry_home(workspace, shared_home, monkeypatch) -> Path:
    monkeypatch.setenv("TUNEWISE_HOME", str(shared_home))
    monkeypatch.setenv("TUNEWISE_USER", "alice")
    return shared_home


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
