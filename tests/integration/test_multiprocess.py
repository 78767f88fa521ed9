"""Two training processes on CPU (gloo), launched by `tunewise train` through torch's elastic launcher.

- DDP for LoRA: every step's loss matches one process training the same global batch; SIGTERM to
  `tunewise train` makes both workers checkpoint the step under way and stop (exit status 3), and
  one process resumes there (2 -> 1).
- FSDP2 for full fine-tuning, started from a one-process checkpoint (1 -> 2 processes); one rank
  SIGKILLed mid-run fails the job at once, naming the rank; the run then resumes from the last
  complete sharded checkpoint in one process (2 -> 1) and ends where the one-process run ends.
- DeepSpeed ZeRO-3 (on CPU through its CPU accelerator and gloo) matches the one-process run too;
  its checkpoints resume on the same number of processes only, and saying so is an error, not a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from safetensors.torch import load_file

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.errors import CheckpointError
from tunewise.spec import load_spec
from tunewise.train.checkpoint import CheckpointManager
from tunewise.train.metrics_log import MetricsLog
from tunewise.train.run import read_status, run_training_job, write_status
from tunewise.train.stop import EXIT_STOPPED

STEPS = 6
TOLERANCE = 2e-4  # the same sums in another order: float32 rounding, no more


def _raw(model_dir: Path, data: Path, method: str, name: str, processes: int, accumulation: int | None = None,
         steps: int = STEPS) -> dict:
    # The same global batch at any world size: 2 sequences x 2 micro-batches a step.
    raw = tiny_spec(model_dir, data, method, max_steps=steps, micro_batch_size=2,
                    gradient_accumulation=accumulation or 2 // processes,
                    learning_rate=1e-3 if method == "lora" else 1e-4)
    raw["name"] = name
    raw["checkpoint"] = {"every_steps": 2, "keep_best": 1, "keep_last": 2}
    raw["resources"] = {"nproc_per_node": processes, "collective_timeout_s": 120}
    return raw


def _launch(tmp_path: Path, raw: dict) -> subprocess.Popen:
    spec = tmp_path / f"{raw['name']}.yaml"
    spec.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "TUNEWISE_ALLOCATOR": "system"}
    return subprocess.Popen([sys.executable, "-m", "tunewise", "train", str(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def full_reference(tiny_model_dir, tmp_path_factory) -> tuple[Path, list[dict], Path]:
    """One process fine-tuning every weight: the data file and the metrics the other runs must match."""
    folder = tmp_path_factory.mktemp("full-reference")
    data = write_chat_dataset(folder / "train.jsonl", rows=48)
    previous = os.environ.get("TUNEWISE_HOME")
    os.environ["TUNEWISE_HOME"] = str(folder / "home")
    try:
        result = run_training_job(load_spec(raw=_raw(tiny_model_dir, data, "full", "one", 1)))
    finally:
        if previous is None:
            os.environ.pop("TUNEWISE_HOME", None)
        else:
            os.environ["TUNEWISE_HOME"] = previous
    return data, _rows(result.run_dir), result.run_dir


def _rows(run_dir: Path) -> list[dict]:
    return MetricsLog(run_dir / "metrics.jsonl").read()


def _assert_same_losses(got: list[dict], want: list[dict], steps: int = STEPS) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, steps + 1))
    for mine, theirs in zip(got, want):
        for key in ("train_loss", "val_loss", "grad_norm"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["step"], key)


def test_two_process_ddp_lora_matches_one_process_and_stops_on_request(tiny_model_dir, tmp_path, workspace):
    steps = 8
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=48)
    reference = run_training_job(load_spec(raw=_raw(tiny_model_dir, data, "lora", "one", 1, steps=steps)))
    run_dir = workspace / "runs" / "two"

    # SIGTERM to `tunewise train` (the control plane's stop request) once step 3 is logged: the two
    # workers finish their step, checkpoint it together and stop; the command exits with status 3.
    proc = _launch(tmp_path, _raw(tiny_model_dir, data, "lora", "two", 2, steps=steps))
    _wait_for_step(proc, run_dir, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_STOPPED, err[-3000:]
    status = read_status(run_dir)
    assert status["state"] == "stopped" and 3 <= status["step"] < steps
    latest = CheckpointManager(run_dir / "checkpoints").latest()
    assert latest.step == status["step"]  # the step under way
    assert json.loads((run_dir / "batch_plan.json").read_text())["world_size"] == 2
    assert {"dcp/__0_0.distcp", "dcp/__1_0.distcp", "rng/rank-1.pt"} <= set(latest.files)
    assert max(f["bytes"] for f in latest.files.values()) < 1_000_000  # the adapter only, never the frozen base

    # The same run resumed in one process (2 -> 1) ends where the one-process run ends, step for step.
    # Only the number of processes changes: the step keeps its 2 micro-batches (batch_plan.json).
    result = run_training_job(load_spec(raw=_raw(tiny_model_dir, data, "lora", "two", 1, accumulation=1, steps=steps)))
    assert result.steps == steps and result.resumed_from == status["step"]
    _assert_same_losses(_rows(run_dir), _rows(reference.run_dir), steps)
    assert (run_dir / "artifact" / "adapter_model.safetensors").is_file()
    assert read_status(run_dir)["state"] == "completed"


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "tunewise.scale.worker" in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    return None


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """Until `proc` (started after any earlier attempt's rows were logged) logs `step`."""
    started, deadline = time.time(), time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        rows = _rows(run_dir)
        if rows and rows[-1]["step"] >= step and rows[-1]["time"] > started:
            return
        time.sleep(0.05)


def _stop_after_step(monkeypatch, step: int) -> None:
    """Make the next in-process run crash right after logging `step` (its checkpoint before it is kept)."""
    real_append = MetricsLog.append

    def append(self, record):
        real_append(self, record)
        if record["step"] == step:
            raise KeyboardInterrupt("stopped by the test")

    monkeypatch.setattr(MetricsLog, "append", append)


def test_fsdp_full_resumes_across_world_sizes_and_a_killed_rank_fails_the_job(tiny_model_dir, tmp_path, workspace,
                                                                             monkeypatch, full_reference):
    data, reference_rows, _ = full_reference
    run_dir = workspace / "runs" / "resized"

    def resized(processes: int) -> dict:
        # Only the number of processes changes: the same run, its step kept at 2 micro-batches (batch_plan.json).
        return _raw(tiny_model_dir, data, "full", "resized", processes, accumulation=2)

    # One process trains steps 1-3 and stops; its checkpoint at step 2 is in the one-process format.
    with monkeypatch.context() as patch:
        _stop_after_step(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            run_training_job(load_spec(raw=resized(1)))

    # Two processes (FSDP2) resume it; rank 1 is killed once step 5 is logged (the checkpoint of step 4 is sharded).
    proc = _launch(tmp_path, resized(2))
    _wait_for_step(proc, run_dir, 5)
    victim = _worker_pid(proc, 1)
    assert victim is not None, "the run ended before rank 1 could be killed"
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert time.monotonic() - killed_at < 60, "the job hung after a rank died"
    assert proc.returncode == 1
    assert "training process rank 1" in err and "SIGKILL" in err and "resume" in err
    assert read_status(run_dir)["state"] == "failed"
    latest = CheckpointManager(run_dir / "checkpoints").latest()
    assert latest.step == 4 and "dcp/__1_0.distcp" in latest.files  # sharded: each rank wrote its half
    assert "2 processes: fsdp-zero2, micro-batch 2 x accumulation 1" in err
    assert "resuming from checkpoint at step 2" in err

    # The same run on one process again: it loads the sharded checkpoint and finishes like the reference.
    resumed = run_training_job(load_spec(raw=resized(1)))
    assert resumed.resumed_from == 4 and resumed.steps == STEPS
    _assert_same_losses(_rows(run_dir), reference_rows)
    plan = json.loads((run_dir / "batch_plan.json").read_text())
    assert (plan["world_size"], plan["gradient_accumulation"]) == (1, 2)


def test_deepspeed_zero3_matches_one_process(tiny_model_dir, tmp_path, workspace, full_reference):
    pytest.importorskip("deepspeed", reason="the deepspeed extra")
    data, reference_rows, reference_dir = full_reference
    raw = _raw(tiny_model_dir, data, "full", "zero3", 2)
    raw["resources"].update(engine="deepspeed", sharding="zero3")
    run_dir = run_training_job(load_spec(raw=raw)).run_dir
    assert "2 processes: deepspeed-zero3" in (run_dir / "logs" / "rank-1.log").read_text()
    _assert_same_losses(_rows(run_dir), reference_rows)
    latest = CheckpointManager(run_dir / "checkpoints").latest()
    assert {f for f in latest.files if "zero_pp_rank_1" in f}, "rank 1 stored its ZeRO partition"
    # The artifact, gathered from the partitions, holds what one process's artifact holds.
    gathered = load_file(run_dir / "artifact" / "model.safetensors")
    alone = load_file(reference_dir / "artifact" / "model.safetensors")
    assert sorted(gathered) == sorted(alone)
    assert max(float((gathered[k] - alone[k]).abs().max()) for k in alone) < 1e-4

    write_status(run_dir, state="failed")  # as if it had stopped: a re-run resumes from its last checkpoint
    raw["resources"] = {"nproc_per_node": 1}  # ... but one process cannot read DeepSpeed's partitions
    with pytest.raises(CheckpointError, match="written with resources.engine: deepspeed"):
        run_training_job(load_spec(raw=raw))


def test_two_process_dpo_matches_one_process(tiny_model_dir, tmp_path, workspace):
    """TRL's trainers under the launcher: accelerate's DDP on tunewise's process group, data sharded by rank."""
    from tests.unit.align.conftest import FIXTURES, align_spec

    def raw(name: str, processes: int) -> dict:
        spec = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", steps=4, name=name, adapter="lora",
                          train={"micro_batch_size": 1, "gradient_accumulation": 2 // processes})
        spec["resources"] = {"nproc_per_node": processes, "collective_timeout_s": 120}
        return spec

    reference = run_training_job(load_spec(raw=raw("dpo-one", 1)))
    two = run_training_job(load_spec(raw=raw("dpo-two", 2)))
    want, got = _rows(reference.run_dir), _rows(two.run_dir)
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4]
    for mine, theirs in zip(got, want):
        for key in ("train_loss", "val_loss", "grad_norm", "reward_margin"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["step"], key)
    latest = CheckpointManager(two.run_dir / "checkpoints").latest()
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(latest.files)  # each rank stored its own
    assert (two.run_dir / "artifact" / "adapter_model.safetensors").is_file()
