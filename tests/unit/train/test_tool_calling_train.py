"""A LoRA step on OpenAI tool-calling rows: the examples trained on carry loss on the tool calls and
answers only, never on tool results or the tool schemas."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import tiny_spec
from tests.unit.data._helpers import labelled_runs
from tunewise.data import read_dataset
from tunewise.data.chat_view import text_view
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job
from tunewise.train.session import TrainingSession

TOOL_ROWS = Path(__file__).resolve().parents[2] / "fixtures" / "data" / "formats" / "openai_chat_tools.jsonl"


def test_lora_step_on_tool_calls_trains_calls_not_results(tiny_model_dir, monkeypatch):
    seen = {}
    prepare = TrainingSession.prepare_data

    def keep_prepared(self, tokenizer):
        seen["prepared"], seen["tokenizer"] = prepare(self, tokenizer), tokenizer
        return seen["prepared"]

    monkeypatch.setattr(TrainingSession, "prepare_data", keep_prepared)
    spec = tiny_spec(tiny_model_dir, TOOL_ROWS, "lora", max_steps=1, micro_batch_size=4)
    spec["data"]["max_length"] = 512
    result = run_training_job(load_spec(raw=spec))

    assert result.state == "completed" and result.steps == 1
    metrics = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["train_loss"] > 0
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert (report["format"], report["variant"]) == ("chat", "tools")
    assert report["tool_rendering"].startswith("tunewise text")  # the tiny model has the bundled template
    assert report["field_mapping"]["parallel_tool_calls"].startswith("dropped:")

    # The examples the run trained on, against the rows they came from: exactly the assistant turns are labelled.
    prepared, tokenizer = seen["prepared"], seen["tokenizer"]
    rows = dict(zip(read_dataset(TOOL_ROWS).lines, read_dataset(TOOL_ROWS).records))
    calls = 0
    for example, line in zip(prepared.train, prepared.train_lines):
        record = rows[line]
        view = text_view(record["messages"], record.get("tools"))
        expected = [m["content"] + tokenizer.eos_token for m in view if m["role"] == "assistant"]
        assert labelled_runs(tokenizer, example) == expected
        assert all("<tool_response>" not in run and "<tools>" not in run for run in expected)
        calls += sum("<tool_call>" in run for run in expected)
    assert calls >= 5
