"""`train` plans memory before loading the model: it refuses what cannot fit and shrinks the micro-batch."""

from __future__ import annotations

import json

import pytest

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.errors import TunewiseError
from tunewise.spec import load_spec
from tunewise.train.run import run_training_job


def test_job_that_cannot_fit_is_refused_before_training(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    spec = load_spec(raw=tiny_spec(tiny_model_dir, data, "full", memory_limit_gb=0.001))
    with pytest.raises(TunewiseError) as err:
        run_training_job(spec)
    message = str(err.value)
    assert "does not fit" in message or "cannot fit" in message, message
    assert "modes that would fit" in message


def test_micro_batch_shrinks_and_accumulation_grows(tiny_model_dir, tmp_path):
    from tunewise.plan import check_fit

    data = write_chat_dataset(tmp_path / "train.jsonl")
    raw = tiny_spec(tiny_model_dir, data, "lora", micro_batch_size=8, gradient_accumulation=1)
    spec = load_spec(raw=raw)
    one = check_fit(tiny_model_dir, "lora", spec.method_config(), seq_len=128, micro_batch=2,
                    gradient_checkpointing=False, device="cpu", dtype_bytes=4, available_bytes=2**40)
    # Room for about two sequences, not eight.
    raw["train"]["memory_limit_gb"] = (one.peak_bytes + 2**20) / 2**30
    result = run_training_job(load_spec(raw=raw))
    decided = json.loads((result.run_dir / "batch_plan.json").read_text())
    assert decided["micro_batch_size"] < 8
    assert decided["micro_batch_size"] * decided["gradient_accumulation"] == 8
