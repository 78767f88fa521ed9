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


def test_auto_compiles_only_when_enough_training_is_left():
    from tunewise.train.compile import AUTO_COMPILE_AFTER_S, worth_compiling

    assert worth_compiling(steps_left=1000, step_seconds=20.0)  # a real CPU run: hours left
    assert not worth_compiling(steps_left=8, step_seconds=20.0)  # a demo: under 3 minutes left
    assert not worth_compiling(steps_left=5000, step_seconds=0.01)  # a tiny model: seconds left
    assert not worth_compiling(steps_left=1, step_seconds=AUTO_COMPILE_AFTER_S)


def test_auto_compile_is_the_default_and_stays_eager_on_a_short_run(tiny_model_dir, tmp_path, workspace):
    from torch._dynamo.utils import counters

    counters.clear()
    spec = load_spec(raw=tiny_spec(tiny_model_dir, write_chat_dataset(tmp_path / "train.jsonl", rows=24), max_steps=3))
    assert spec.train.compile == "auto"
    run_training_job(spec)
    assert counters["stats"]["unique_graphs"] == 0


def test_auto_compiles_after_the_second_step_when_the_run_is_long(tiny_model_dir, tmp_path, workspace, monkeypatch,
                                                                 capsys):
    import tunewise.train.compile as compile_module

    data = write_chat_dataset(tmp_path / "train.jsonl", rows=24)
    eager = run_training_job(load_spec(raw={**tiny_spec(tiny_model_dir, data, max_steps=4, compile=False),
                                            "name": "auto-eager"}))
    compiled_layers = []
    real_compile = compile_module.compile_decoder_layers
    monkeypatch.setattr(compile_module, "compile_decoder_layers", lambda m: compiled_layers.append(real_compile(m)) or 2)
    monkeypatch.setattr(compile_module, "AUTO_COMPILE_AFTER_S", 0.0)  # any run is "long"
    auto = run_training_job(load_spec(raw={**tiny_spec(tiny_model_dir, data, max_steps=4), "name": "auto-long"}))
    assert compiled_layers == [2], "auto did not compile the two decoder layers once"
    assert "train.compile auto" in capsys.readouterr().err
    assert _losses(auto.run_dir) == pytest.approx(_losses(eager.run_dir), rel=1e-3)


def test_auto_on_an_alignment_method_does_not_warn(tiny_model_dir, tmp_path, recwarn):
    load_spec(raw=tiny_spec(tiny_model_dir, tmp_path / "prefs.jsonl", method="dpo"))
    assert not [w for w in recwarn if "train.compile" in str(w.message)]


def test_compiled_runs_pad_packed_batches_to_max_length_so_the_shape_never_changes():
    from tunewise.train.batches import BatchPlan

    examples = [{"input_ids": list(range(n)), "labels": list(range(n))} for n in (5, 7, 9, 11, 13, 3)]
    packed = BatchPlan(examples, micro_batch_size=2, max_length=32, packed=True, seed=0, pad_id=0)
    before = [packed.tensors(ix, "cpu") for ix in packed.epoch(0)]
    assert max(batch["input_ids"].shape[1] for batch, _ in before) < 32  # rows not full: as wide as the longest
    packed.pad_to_max_length()
    for (old, old_real), indices in zip(before, packed.epoch(0)):
        batch, real = packed.tensors(indices, "cpu")
        assert batch["input_ids"].shape[1] == 32
        assert real == old_real  # padding is not counted as trained tokens
        assert int((batch["labels"] != -100).sum()) == int((old["labels"] != -100).sum())  # nor labelled
    unpacked = BatchPlan(examples, micro_batch_size=2, max_length=32, packed=False, seed=0, pad_id=0)
    unpacked.pad_to_max_length()
    assert all(unpacked.tensors(ix, "cpu")[0]["input_ids"].shape[1] < 32 for ix in unpacked.epoch(0))
