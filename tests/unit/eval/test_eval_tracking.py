"""tunewise.tracking against a real embedded MLflow store (SQLite in the test's workspace)."""

from __future__ import annotations

import json

import runfactory

from tunewise import tracking
from tunewise.eval.gate import run_gate
from tunewise.eval.report import EvalReport


def _run_dir(workspace):
    run_dir = workspace / "runs" / "tracked"
    run_dir.mkdir(parents=True, exist_ok=True)
    runfactory.write_run_files(run_dir, base_model="smollm2-135m-instruct", method="lora")
    return run_dir


def test_params_metrics_artifacts_and_status_reach_mlflow(mlflow_store, capsys, monkeypatch):
    workspace = mlflow_store
    monkeypatch.setattr(tracking, "target_installed", lambda target: False)  # as where neither is installed
    import yaml

    run_dir = _run_dir(workspace)
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    handle = tracking.start_run(run_dir, spec, report_to=["tensorboard", "wandb"])
    assert tracking.tracking_uri() == f"sqlite:///{workspace / 'mlflow.db'}"
    for step in (1, 2, 3):
        tracking.log_metrics(handle, {"train_loss": 3.0 - step, "lr": 1e-4, "skipped": None, "nan": float("nan")}, step)
    report = EvalReport(run="tracked", created_at="now", base_model="b", method="lora",
                        metrics={"exact_match": 0.9}, base_metrics={"exact_match": 0.4})
    tracking.log_eval(handle, report, run_gate(report, {"exact_match": ">= 0.8"}))
    logged = tracking.log_artifacts(handle)
    tracking.end_run(handle, "completed")

    client = tracking.mlflow_client()
    run = client.get_run(handle.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["train.learning_rate"] == "0.0002" and run.data.params["method.name"] == "lora"
    assert [m.value for m in client.get_metric_history(handle.run_id, "train_loss")] == [2.0, 1.0, 0.0]
    assert "nan" not in run.data.metrics and "skipped" not in run.data.metrics
    assert run.data.metrics["eval.gain.exact_match"] == 0.5
    assert run.data.tags["tunewise.gate"] == "passed"
    artifacts = {a.path for a in client.list_artifacts(handle.run_id)}
    assert {"spec.yaml", "status.json", "data_report.json", "loss_curve.png"} <= artifacts
    assert any(p.endswith("loss_curve.png") for p in logged)
    assert str(workspace / "mlartifacts") in run.info.artifact_uri
    err = capsys.readouterr().err
    assert "tensorboard is not installed; skipping it" in err and "wandb is not installed; skipping it" in err


def test_resumed_training_continues_the_same_mlflow_run(mlflow_store):
    workspace = mlflow_store
    run_dir = _run_dir(workspace)
    first = tracking.start_run(run_dir, {"method": "lora"})
    tracking.log_metrics(first, {"train_loss": 2.0}, 1)
    tracking.end_run(first, "failed")
    stored = json.loads((run_dir / "tracking.json").read_text())
    assert stored["run_id"] == first.run_id

    second = tracking.start_run(run_dir, {"method": "lora"})
    assert second.run_id == first.run_id
    assert tracking.mlflow_client().get_run(second.run_id).info.status == "RUNNING"
    tracking.log_metrics(second, {"train_loss": 1.5}, 2)
    tracking.end_run(second, "completed")
    history = tracking.mlflow_client().get_metric_history(first.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.5)]


def test_remote_uri_from_environment_and_disabled_tracking(workspace, monkeypatch):
    monkeypatch.setenv("TUNEWISE_MLFLOW_URI", f"sqlite:///{workspace / 'elsewhere.db'}")
    assert tracking.tracking_uri().endswith("elsewhere.db")
    monkeypatch.delenv("TUNEWISE_MLFLOW_URI")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "config.yaml").write_text("mlflow_uri: http://mlflow.internal:5000\n")
    assert tracking.tracking_uri() == "http://mlflow.internal:5000"
    handle = tracking.start_run(_run_dir(workspace), {"tracking": {"enabled": False}})
    assert handle.run_id is None
    tracking.log_metrics(handle, {"train_loss": 1.0}, 1)  # a no-op, not an error
    tracking.end_run(handle, "completed")
