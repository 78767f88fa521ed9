"""Measured throughput saved with --save is what later plans use, and they say so."""

from __future__ import annotations

from tunewise.plan import calibration
from tunewise.plan.measure import Measurement, save_calibration
from tunewise.plan.planner import plan


def test_saved_throughput_is_used_by_later_plans(workspace):
    before = plan(model="smollm2-135m-instruct", gpu="cpu", tokens=100_000, seq_len=128, micro_batch=2)
    assert before.mode("lora").throughput_source.startswith("estimated")
    path = save_calibration("smollm2-135m-instruct", [
        Measurement("lora", "cpu", 128, 2, 10**9, 9 * 10**8, 100.0, 123.0),
        Measurement("qlora", "cpu", 128, 2, 10**9, None, 100.0, None, skipped="does not fit"),
    ])
    assert path == workspace / "calibration.json"
    entry = calibration.find("smollm2-135m-instruct", calibration.device_key("cpu"), "lora")
    assert entry is not None and entry.tokens_per_s == 123.0
    after = plan(model="smollm2-135m-instruct", gpu="cpu", tokens=100_000, seq_len=128, micro_batch=2)
    lora = after.mode("lora")
    assert lora.tokens_per_s == 123.0
    assert lora.throughput_source.startswith("measured 123.0 tokens/s")
    assert lora.hours_per_epoch == 100_000 / 123.0 / 3600
    assert after.mode("qlora").throughput_source.startswith("estimated")  # nothing measured for it


def test_damaged_calibration_file_is_ignored(workspace):
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "calibration.json").write_text("{not json")
    assert calibration.load_entries() == []
