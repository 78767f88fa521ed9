"""train.compile: the decoder layers are compiled in place and train to the same losses as eager."""

from __future__ import annotations

import json

import pytest

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.spec import SpecWarning, load_spec
from tunewise.train.run import run_training_job


def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def test_compiled_layers_train_like_eager_ones(tiny_model_dir, tmp_path, workspace):
    from torch._dynamo.utils import counters

    counters.clear()
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    results = {}
    for compiled in (False, True):
        raw = {**tiny_spec(tiny_model_dir, data, max_steps=3, compile=compiled), "name": f"compile-{compiled}"}
        results[compiled] = run_training_job(load_spec(raw=raw))
    eager, compiled = _losses(results[False].run_dir), _losses(results[True].run_dir)
    assert len(compiled) == 3
    assert compiled == pytest.approx(eager, rel=1e-3)
    assert (results[True].run_dir / "artifact").is_dir()
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled: the run fell back to eager"


def test_compile_on_an_alignment_method_warns_that_it_is_ignored(tiny_model_dir, tmp_path):
    raw = {**tiny_spec(tiny_model_dir, tmp_path / "prefs.jsonl", method="dpo", compile=True)}
    with pytest.warns(SpecWarning, match="train.compile is ignored by dpo"):
        load_spec(raw=raw)
