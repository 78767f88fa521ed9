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


def test_cli_measure_prints_the_comparison_and_saves(monkeypatch, capsys, workspace):
    import pytest

    from tunewise.cli import main
    from tunewise.plan import measure

    canned = [Measurement("full", "cpu", 64, 1, 1_000_000_000, 950_000_000, 50.0, 40.0),
              Measurement("qlora", "cpu", 64, 1, 600_000_000, None, 10.0, None, error="qlora: measurement failed")]
    monkeypatch.setattr(measure, "measure_modes", lambda *a, **k: canned)
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--gpu", "cpu", "--tokens", "10000", "--seq-len", "64", "--micro-batch", "1",
              "--measure", "--save"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    assert "Estimate against measurement" in out and "+5.3%" in out and "failed" in out
    assert "saved to" in out and "later plans on this machine use it" in out
    assert calibration.find("smollm2-135m-instruct", calibration.device_key("cpu"), "full").tokens_per_s == 40.0
    assert "measured 40.0 tokens/s" in out  # the plan printed after measuring already uses it
