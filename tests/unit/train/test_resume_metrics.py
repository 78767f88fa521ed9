"""A killed attempt's metrics rows past the checkpoint it resumes from (or all of them, when it
died before its first checkpoint) are dropped, so metrics.jsonl holds every step once."""

from __future__ import annotations

import json

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job
from tunewise.workspace import runs_dir


def test_rows_of_an_attempt_killed_before_its_first_checkpoint_are_dropped(tiny_model_dir, tmp_path, workspace):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    raw = {**tiny_spec(tiny_model_dir, data, max_steps=4), "name": "killed-early"}
    raw["checkpoint"] = {"every_steps": 4, "keep_last": 1, "keep_best": 0}
    run_dir = runs_dir() / "killed-early"
    run_dir.mkdir(parents=True)
    # What a run killed after logging steps 1-3, before writing any checkpoint, leaves behind.
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train_loss": 9.9}) + "\n" for s in (1, 2, 3)))
    run_training_job(load_spec(raw=raw))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train_loss" in r]
    assert steps == [1, 2, 3, 4]
    assert all(r["train_loss"] != 9.9 for r in rows)
