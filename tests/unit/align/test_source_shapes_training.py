"""Alignment on datasets as other tools ship them: DPO on OpenAI's preference rows, KTO on
LLaMA-Factory's labelled rows, each one step on the tiny model, checking what reaches the trainer."""

from __future__ import annotations

import json

import pytest

from tests.unit.align.conftest import align_spec
from tunewise.data import read_dataset
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job

from ..data._helpers import FIXTURES

pytestmark = pytest.mark.filterwarnings("ignore::tunewise.spec.SpecWarning")
SHAPES = FIXTURES / "formats"


def _spy(monkeypatch, module) -> dict:
    """Keep the trainer and the rows `module.make_trainer` builds it from."""
    seen: dict = {}
    original = module.make_trainer

    def make_trainer(job, data, callbacks):
        seen["trainer"], seen["data"] = original(job, data, callbacks), data
        return seen["trainer"]

    monkeypatch.setattr(module, "make_trainer", make_trainer)
    return seen


def test_kto_step_on_llama_factory_labelled_rows(tiny_model_dir, monkeypatch):
    from tunewise.methods import kto

    seen = _spy(monkeypatch, kto)
    path = SHAPES / "llama_factory_kto.json"
    result = run_training_job(load_spec(raw=align_spec(tiny_model_dir, path, "kto", steps=1)))
    assert result.state == "completed" and result.steps == 1

    report = json.loads((result.run_dir / "data_report.json").read_text())
    read_as = (report["format"], report["variant"], report["preference_kind"])
    assert read_as == ("preference", "llama-factory kto", "unpaired")
    # Every label in the file reaches the trainer with its own answer: none is dropped or read as SFT.
    in_file = {r["completion"][0]["content"]: r["label"] for r in read_dataset(path).records}
    rows, dataset = seen["data"].train, seen["trainer"].train_dataset
    assert [bool(x) for x in dataset["label"]] == [r["label"] for r in rows]
    assert all(in_file[r["completion"][0]["content"]] is r["label"] for r in rows)
    assert {r["label"] for r in rows} == {True, False}


def test_dpo_step_on_openai_preference_rows(tiny_model_dir, monkeypatch):
    from tunewise.methods import dpo

    seen = _spy(monkeypatch, dpo)
    spec = align_spec(tiny_model_dir, SHAPES / "openai_preference.jsonl", "dpo", steps=1)
    spec["data"]["max_length"] = 256  # the row with tools is about 220 tokens
    result = run_training_job(load_spec(raw=spec))
    assert result.state == "completed" and result.steps == 1
    metrics = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1

    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert (report["format"], report["variant"], report["preference_kind"]) == ("preference", "openai", "paired")
    assert report["field_mapping"]["input.parallel_tool_calls"].startswith("dropped:")
    rows = seen["data"].train + seen["data"].validation
    assert len(seen["trainer"].train_dataset) == len(seen["data"].train)
    plain = next(r for r in rows if r["prompt"][-1]["content"] == "Describe rain.")
    assert plain["prompt"][0] == {"role": "system", "content": "Answer in one short sentence."}
    assert plain["chosen"] == [{"role": "assistant", "content": "Rain is calm."}]
    # The row with tools: the bundled template has no tool support, so tools and the call are tunewise text.
    tools = next(r for r in rows if r["prompt"][-1]["content"] == "Weather in Cork?")
    assert "<tools>" in tools["prompt"][0]["content"] and '"get_weather"' in tools["prompt"][0]["content"]
    assert tools["chosen"][0]["content"].startswith("<tool_call>\n{\"name\": \"get_weather\"")
