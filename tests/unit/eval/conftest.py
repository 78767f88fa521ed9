"""Fixtures for the evaluation tests: finished run directories built from the tiny random Llama."""

from __future__ import annotations

import pytest
import runfactory  # tests/unit/eval/runfactory.py (this folder is on sys.path under pytest's default import mode)


@pytest.fixture
def lora_run(tiny_model_dir, workspace):
    from tunewise.workspace import runs_dir

    def build(name: str = "lora-run", **kwargs):
        return runfactory.make_lora_run(runs_dir(), name, tiny_model_dir, **kwargs)

    return build


@pytest.fixture
def small_eval() -> dict:
    """An eval section small enough for a test: few examples, short answers, small forgetting probes."""
    return {
        "max_examples": 4,
        "max_new_tokens": 4,
        "samples": 2,
        "forgetting": {"max_paragraphs": 4, "max_questions": 3},
    }


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    return runfactory.make_mlflow_template(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def mlflow_store(workspace, mlflow_template):
    """This test's workspace with a ready, empty MLflow store."""
    runfactory.install_mlflow_store(mlflow_template, workspace)
    return workspace
