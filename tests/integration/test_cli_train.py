"""The CLI as a user runs it: train with overrides, methods, generate, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.helpers import tiny_spec, write_chat_dataset


def _cli(*args, env=None, check=False):
    return subprocess.run([sys.executable, "-m", "tunewise", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=check)


def test_train_with_overrides_then_generate(tiny_model_dir, tmp_path, workspace):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    spec = tmp_path / "job.yaml"
    raw = tiny_spec(tiny_model_dir, data, "lora")
    raw.pop("name")
    spec.write_text(yaml.safe_dump(raw))
    env = {"TUNEWISE_HOME": str(workspace)}
    done = _cli("train", str(spec), "train.max_steps=2", "method.r=4", env=env)
    assert done.returncode == 0, done.stderr
    assert "trainable params:" in done.stderr
    (run_dir,) = (workspace / "runs").iterdir()
    assert run_dir.name.startswith("job-")
    stored = yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert stored["train"]["max_steps"] == 2 and stored["method"]["r"] == 4
    assert stored["method"]["alpha"] == 8 and stored["train"]["learning_rate"] == 2e-4
    # On Linux CPU the command re-executed itself under mimalloc (tunewise/train/allocator.py).
    status = json.loads((run_dir / "status.json").read_text())
    assert status["allocator"] == ("mimalloc" if sys.platform.startswith("linux") else "system")
    # The same command again finds the finished run instead of training twice.
    again = _cli("train", str(spec), "train.max_steps=2", "method.r=4", env=env)
    assert again.returncode == 0 and "already complete" in again.stderr

    answer = _cli("generate", run_dir.name, "--prompt", "hello", "--max-new-tokens", "5", env=env)
    assert answer.returncode == 0, answer.stderr


def test_system_allocator_on_request_and_a_bad_choice_is_one_clear_line(tiny_model_dir, tmp_path, workspace):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tiny_model_dir, write_chat_dataset(tmp_path / "train.jsonl"), "lora")))
    env = {"TUNEWISE_HOME": str(workspace)}
    bad = _cli("train", str(spec), "train.max_steps=1", env={**env, "TUNEWISE_ALLOCATOR": "tcmalloc"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "TUNEWISE_ALLOCATOR='tcmalloc' is not one of auto, mimalloc, system" in bad.stderr
    done = _cli("train", str(spec), "train.max_steps=1", env={**env, "TUNEWISE_ALLOCATOR": "system"})
    assert done.returncode == 0, done.stderr
    (run_dir,) = (workspace / "runs").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["allocator"] == "system"


def test_methods_lists_every_method_as_json():
    out = _cli("methods", "--json", check=True)
    names = {m["name"] for m in json.loads(out.stdout)}
    assert {"full", "lora", "qlora", "dora", "ia3", "prefix", "prompt"} <= names


def test_user_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: {name: lora, r: -3}\ndata: {train: x.jsonl}\n")
    for args in (["train", str(bad)], ["train", str(tmp_path / "missing.yaml")],
                 ["train", str(bad), "train.lr"], ["generate", "no-such-run", "--prompt", "x"]):
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "error:" in done.stderr, done.stderr
