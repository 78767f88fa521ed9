"""A stop request (SIGTERM under `tunewise train`) checkpoints the step under way and stops; running
the job again resumes at exactly that step. The supervised loop and TRL's trainers (DPO) both."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.helpers import tiny_spec, write_chat_dataset
from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.spec import load_spec
from tunewise.train.metrics_log import subscribe
from tunewise.train.run import read_status, run_training_job
from tunewise.train.stop import TrainingStopped, clear_stop_request, install_stop_handler, request_stop
from tunewise.workspace import runs_dir


@pytest.fixture(autouse=True)
def _no_stop_left_over():
    clear_stop_request()
    yield
    clear_stop_request()


def _stop_at(run_dir, step: int):
    """Ask for a stop when the loop logs `step` (what a SIGTERM then would do)."""
    (run_dir).mkdir(parents=True, exist_ok=True)
    return subscribe(run_dir / "metrics.jsonl", lambda row: row.get("step") == step and request_stop())


def _steps(run_dir) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "train_loss" in r]


def test_supervised_loop_stops_at_the_step_and_resumes_there(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    raw = {**tiny_spec(tiny_model_dir, data, max_steps=6), "name": "stopped"}
    raw["checkpoint"] = {"every_steps": 4, "keep_last": 2, "keep_best": 0}
    run_dir = runs_dir() / "stopped"
    unsubscribe = _stop_at(run_dir, 3)  # not a checkpoint step: the stop writes one
    with pytest.raises(TrainingStopped) as stopped:
        run_training_job(load_spec(raw=raw))
    unsubscribe()
    assert stopped.value.step == 3 and stopped.value.exit_code == 3
    assert read_status(run_dir)["state"] == "stopped"
    assert (run_dir / "checkpoints" / "step-00000003").is_dir()
    clear_stop_request()
    result = run_training_job(load_spec(raw=raw))
    assert result.resumed_from == 3 and result.steps == 6 and _steps(run_dir) == [1, 2, 3, 4, 5, 6]
    assert read_status(run_dir)["state"] == "completed"


def test_dpo_stops_at_the_step_and_resumes_there(tiny_model_dir):
    raw = align_spec(tiny_model_dir, FIXTURES / "pairs.jsonl", "dpo", steps=4, name="t-stop")
    raw["checkpoint"] = {"every_steps": 4, "keep_best": 0, "keep_last": 2}
    spec = load_spec(raw=raw)
    run_dir = runs_dir() / "t-stop"
    unsubscribe = _stop_at(run_dir, 1)
    with pytest.raises(TrainingStopped) as stopped:
        run_training_job(spec)
    unsubscribe()
    # TRL logs a step's row when the next step's arrive: the stop lands a step or two later.
    at = stopped.value.step
    assert 1 <= at < 4 and read_status(run_dir)["state"] == "stopped"
    assert (run_dir / "checkpoints" / f"step-{at:08d}").is_dir()
    clear_stop_request()
    result = run_training_job(spec)
    assert result.resumed_from == at and result.steps == 4 and _steps(run_dir) == [1, 2, 3, 4]


def test_sigterm_sets_the_stop_request():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        install_stop_handler()
        os.kill(os.getpid(), signal.SIGTERM)
        from tunewise.train.stop import stop_requested

        assert stop_requested()
    finally:
        signal.signal(signal.SIGTERM, previous)
