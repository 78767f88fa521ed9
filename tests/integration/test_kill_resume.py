"""SIGKILL in the middle of training, then the same command again: the run resumes and ends where an
uninterrupted run ends, with the same loss, and never loads a half-written checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import tiny_spec, write_chat_dataset

TOTAL_STEPS = 24


def _write_spec(tmp_path: Path, model_dir: Path, name: str) -> Path:
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=48)
    raw = tiny_spec(model_dir, data, "lora", max_steps=TOTAL_STEPS, learning_rate=3e-3)
    raw["name"] = name
    raw["checkpoint"] = {"every_steps": 3, "keep_best": 1, "keep_last": 2}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "tunewise", "train", str(spec)]


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _kill_when_step_reached(spec: Path, run_dir: Path, step: int, env: dict) -> None:
    proc = subprocess.Popen(_train_cmd(spec), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        rows = _metrics(run_dir)
        if rows and rows[-1]["step"] >= step:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_then_rerun_resumes_to_same_result(tiny_model_dir, tmp_path, workspace):
    env = {**os.environ, "TUNEWISE_HOME": str(workspace)}
    runs = workspace / "runs"

    reference = _write_spec(tmp_path, tiny_model_dir, "uninterrupted")
    subprocess.run(_train_cmd(reference), env=env, check=True, capture_output=True)
    expected = _metrics(runs / "uninterrupted")

    spec = _write_spec(tmp_path, tiny_model_dir, "killed")
    run_dir = runs / "killed"
    for kill_at in (5, 13):
        _kill_when_step_reached(spec, run_dir, kill_at, env)
        assert json.loads((run_dir / "status.json").read_text())["state"] == "running"

    # A half-written checkpoint with a newer step must never be used.
    fake = run_dir / "checkpoints" / "step-00000020"
    fake.mkdir(parents=True)
    (fake / "trainable.safetensors").write_bytes(b"partial")

    done = subprocess.run(_train_cmd(spec), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming from checkpoint at step" in done.stderr
    assert "step 20 of" not in done.stderr
    got = _metrics(run_dir)
    assert [r["step"] for r in got] == list(range(1, TOTAL_STEPS + 1))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert abs(got[-1]["train_loss"] - expected[-1]["train_loss"]) < 1e-3
    assert abs(got[-1]["val_loss"] - expected[-1]["val_loss"]) < 1e-3
