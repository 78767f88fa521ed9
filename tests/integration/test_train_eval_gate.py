"""`train` ends with evaluation, the gate and MLflow tracking; a failed gate is a failed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.helpers import tiny_spec, write_chat_dataset


def _job(tmp_path, model_dir, name, gate):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    raw = tiny_spec(model_dir, data, "lora", max_steps=2)
    raw["name"] = name
    raw["eval"] = {"max_examples": 4, "max_new_tokens": 8, "gate": gate,
                   "forgetting": {"max_paragraphs": 3, "max_questions": 3}}
    raw["tracking"] = {"enabled": True}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(path, workspace):
    return subprocess.run([sys.executable, "-m", "tunewise", "train", str(path)], capture_output=True, text=True,
                          env={**os.environ, "TUNEWISE_HOME": str(workspace)})


def test_passing_and_failing_gates(tiny_model_dir, tmp_path, workspace):
    from tunewise.tracking import mlflow_client

    ok = _train(_job(tmp_path, tiny_model_dir, "gate-ok", {"val_loss": "<= 1000"}), workspace)
    assert ok.returncode == 0, ok.stderr
    run = workspace / "runs" / "gate-ok"
    assert json.loads((run / "gate.json").read_text())["passed"] is True
    assert "exact_match" in json.loads((run / "eval.json").read_text())["metrics"]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"

    bad = _train(_job(tmp_path, tiny_model_dir, "gate-bad", {"exact_match": ">= 0.99"}), workspace)
    assert bad.returncode == 1, bad.stderr
    output = bad.stdout + bad.stderr
    assert "did not pass its gate" in output and "Traceback" not in output
    status = json.loads((workspace / "runs" / "gate-bad" / "status.json").read_text())
    assert status["state"] == "failed" and status.get("reason") == "gate"

    os.environ["TUNEWISE_HOME"] = str(workspace)
    tracked = json.loads((run / "tracking.json").read_text())
    mlflow_run = mlflow_client(tracked["tracking_uri"]).get_run(tracked["run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert "train_loss" in mlflow_run.data.metrics and "eval.exact_match" in mlflow_run.data.metrics
