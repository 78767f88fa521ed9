"""Build finished-run directories the way the training stage leaves them, from the tiny random Llama.

Shared by the eval and registry tests (the registry's conftest loads this file by path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

QA = [
    ("What colour is a ripe banana?", "Yellow."),
    ("How many wheels does a bicycle have?", "Two."),
    ("What is the capital of Italy?", "Rome."),
    ("Which animal says moo?", "A cow."),
    ("What is three plus four?", "Seven."),
    ("What do you drink when you are thirsty?", "Water."),
]


def validation_records() -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]


def write_run_files(run_dir: Path, *, base_model: str, method: str, eval_section: dict[str, Any] | None = None,
                    state: str = "completed") -> None:
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    source = run_dir.parent.parent / "datasets" / f"{run_dir.name}-train.jsonl"  # the user's file, outside the run
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("".join(json.dumps(r) + "\n" for r in validation_records() * 9))
    spec = {
        "name": run_dir.name,
        "base_model": base_model,
        "method": {"name": method},
        "data": {"train": str(source), "max_length": 256},
        "train": {"max_steps": 4, "learning_rate": 2e-4, "device": "cpu"},
    }
    if eval_section is not None:
        spec["eval"] = eval_section
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    status = {"state": state, "step": 4, "total_steps": 4, "method": method, "base_model": base_model,
              "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00"}
    (run_dir / "status.json").write_text(json.dumps(status))
    rows = [{"step": s, "train_loss": 3.0 - 0.4 * s, "lr": 2e-4, "time": 1.0 * s} for s in range(1, 5)]
    rows.append({"step": 4, "val_loss": 2.1, "time": 4.5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "data_report.json").write_text(json.dumps({"train_rows": 54, "validation_rows": 6, "format": "chat",
                                                          "sha256": "ab" * 32}))
    (run_dir / "data" / "validation.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in validation_records()))


def make_lora_run(runs_root: Path, name: str, tiny_model_dir: Path, *, r: int = 4, noise: float = 0.3,
                  eval_section: dict[str, Any] | None = None, seed: int = 0,
                  targets: Any = ("q_proj", "v_proj")) -> Path:
    """A run whose artifact is a LoRA adapter on the tiny model, with B random (noise 0.3 is enough to
    change greedy answers, so judge and before/after comparisons have something to compare)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewise.models.artifact import write_artifact_info

    torch.manual_seed(seed)
    run_dir = runs_root / name
    artifact = run_dir / "artifact"
    artifact.mkdir(parents=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r,
                                            target_modules=targets if isinstance(targets, str) else list(targets),
                                            lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0.0, noise)
    model.save_pretrained(artifact)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(artifact)
    write_artifact_info(artifact, method="lora", adapter=True, base_model=str(tiny_model_dir),
                        base_model_dir=str(tiny_model_dir))
    write_run_files(run_dir, base_model=str(tiny_model_dir), method="lora", eval_section=eval_section)
    (artifact / "spec.yaml").write_text((run_dir / "spec.yaml").read_text())
    return run_dir


def make_full_run(runs_root: Path, name: str, tiny_model_dir: Path, model: Any,
                  eval_section: dict[str, Any] | None = None) -> Path:
    """A run whose artifact is a full model (`model`, e.g. over-trained on purpose)."""
    from transformers import AutoTokenizer

    from tunewise.models.artifact import write_artifact_info

    run_dir = runs_root / name
    artifact = run_dir / "artifact"
    artifact.mkdir(parents=True)
    model.save_pretrained(artifact, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(artifact)
    write_artifact_info(artifact, method="full", adapter=False, base_model=str(tiny_model_dir),
                        base_model_dir=str(tiny_model_dir))
    write_run_files(run_dir, base_model=str(tiny_model_dir), method="full", eval_section=eval_section)
    return run_dir


def make_mlflow_template(folder: Path) -> Path:
    """An empty MLflow SQLite store, migrated once; tests copy it instead of migrating their own
    (creating the tables takes seconds, copying the file milliseconds)."""
    from mlflow import MlflowClient

    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return db


def install_mlflow_store(template: Path, home: Path) -> None:
    import shutil

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "mlflow.db")
