"""`tunewise plan`: the --json schema, the table, refusals, the editable hardware catalog, data files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tunewise.cli import main

FIXTURES = Path(__file__).parents[2] / "fixtures" / "plan"

MODE_SCHEMA = {
    "type": "object",
    "required": ["mode", "peak_memory_gb", "fits", "gpus_needed", "tokens_per_s", "hours_per_epoch", "cost_usd",
                 "breakdown_gb", "scheduling"],
    "properties": {
        "mode": {"enum": ["full", "lora", "qlora", "dora", "dpo", "ppo"]},
        "peak_memory_gb": {"type": "number", "exclusiveMinimum": 0},
        "fits": {"type": "boolean"},
        "gpus_needed": {"type": ["integer", "null"], "minimum": 1},
        "tokens_per_s": {"type": "number", "exclusiveMinimum": 0},
        "hours_per_epoch": {"type": "number", "exclusiveMinimum": 0},
        "cost_usd": {"type": "number", "minimum": 0},
        "breakdown_gb": {
            "type": "object",
            "required": ["weights", "gradients", "optimizer_states", "activations", "framework_overhead"],
            "additionalProperties": {"type": "number", "minimum": 0},
        },
        "scheduling": {"type": "string"},
    },
}
PLAN_SCHEMA = {
    "type": "object",
    "required": ["modes", "recommendation", "extra_costs"],
    "properties": {
        "modes": {"type": "array", "minItems": 6, "maxItems": 6, "items": MODE_SCHEMA},
        "recommendation": {
            "type": "object",
            "required": ["mode", "reasons"],
            "properties": {"mode": {"type": ["string", "null"]},
                           "reasons": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
        },
        "extra_costs": {"type": "object", "required": ["serving", "checkpoint_storage", "spot", "cloud_vs_owned"]},
    },
}


def _cli(*args: str) -> None:
    """Run the CLI in-process; main() exits with the command's code."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 0


def _run_json(capsys, *args: str) -> dict:
    _cli("plan", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_json_schema(capsys):
    out = _run_json(capsys, "--params", "13e9", "--gpu", "a100-80gb", "--gpus", "2", "--examples", "200000",
                    "--variants", "5", "--budget", "1000")
    jsonschema.validate(out, PLAN_SCHEMA)
    assert out["recommendation"]["mode"] == "lora"
    assert [m["mode"] for m in out["modes"]] == ["full", "lora", "qlora", "dora", "dpo", "ppo"]
    by_mode = {m["mode"]: m for m in out["modes"]}
    assert "quantization_constants" in by_mode["qlora"]["breakdown_gb"]
    assert {"reward_model", "value_model"} <= set(by_mode["ppo"]["breakdown_gb"])
    assert out["model"]["assumed"] and "llama-2-13b" in out["model"]["source"]
    assert out["extra_costs"]["serving"]["full_copies_gb"] > out["extra_costs"]["serving"]["base_plus_adapters_gb"]


def test_table_output(capsys):
    _cli("plan", "--params", "7e9", "--gpu", "h100-80gb", "--tokens", "50000000")
    text = capsys.readouterr().out
    for needle in ("Peak memory per device", "Fit, time and cost", "Recommendation: lora", "break-even",
                   "assumed Llama-family shape", "qlora"):
        assert needle in text


def test_refusal_exits_2_with_a_clear_message():
    proc = subprocess.run([sys.executable, "-m", "tunewise", "plan", "--params", "70e9", "--gpu", "t4",
                           "--examples", "1000"], check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: no adaptation mode fits" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_option_is_a_user_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--params", "7e9", "--examples", "10", "--objective", "vibes"])
    assert exc.value.code == 2
    assert "--objective" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "--params", "7e9", "--examples", "10", "--gpu", "nope-9000"])
    assert "unknown device 'nope-9000'" in capsys.readouterr().err


def test_workspace_hardware_file_overrides_prices(capsys, workspace):
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "hardware.yaml").write_text(
        "gpus:\n  a100-80gb:\n    price_per_hour: {low: 10.0, high: 10.0, source: test}\n")
    out = _run_json(capsys, "--params", "7e9", "--examples", "10000")
    assert out["hardware"]["price_per_hour_usd"] == [10.0, 10.0]
    lora = next(m for m in out["modes"] if m["mode"] == "lora")
    assert lora["cost_usd"] == pytest.approx(lora["hours_per_epoch"] * lora["gpus_used"] * 10.0, rel=0.01)


def test_hardware_flag_adds_a_gpu(capsys, tmp_path):
    catalog = tmp_path / "mine.yaml"
    catalog.write_text("gpus:\n  b200:\n    name: NVIDIA B200\n    memory_gib: 178\n    peak_tflops: 2250\n"
                       "    price_per_hour: {low: 5.0, high: 7.0}\n")
    out = _run_json(capsys, "--params", "70e9", "--examples", "10000", "--gpu", "b200", "--hardware", str(catalog))
    assert out["hardware"]["name"] == "NVIDIA B200"
    assert next(m for m in out["modes"] if m["mode"] == "qlora")["fits"]


def test_data_file_is_counted_with_the_tokenizer(capsys):
    out = _run_json(capsys, "--data", str(FIXTURES / "train_small.jsonl"), "--gpu", "cpu")
    assert out["dataset"]["examples"] == 40
    assert 20 * 40 < out["dataset"]["tokens"] < 60 * 40
    assert "tokenizer" in out["dataset"]["source"]
    assert out["hardware"]["gpu"] == "cpu" and out["setup"]["precision"] == "fp32"


def test_examples_assume_a_mean_length_and_say_so(capsys):
    out = _run_json(capsys, "--params", "7e9", "--examples", "1000", "--mean-example-tokens", "300")
    assert out["dataset"]["tokens"] == 300_000
    assert "assumed mean of 300 tokens" in out["dataset"]["source"]


def test_spot_is_only_offered_with_checkpointing(capsys):
    out = _run_json(capsys, "--params", "7e9", "--examples", "1000", "--no-checkpointing")
    assert out["extra_costs"]["spot"] is None
    out = _run_json(capsys, "--params", "7e9", "--examples", "1000")
    assert out["extra_costs"]["spot"]["discount"] == pytest.approx(0.7)
