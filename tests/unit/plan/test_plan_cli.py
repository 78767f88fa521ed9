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
    "required": ["mode", "micro_batch", "seq_len", "peak_memory_gb", "lean_peak_memory_gb", "lean_setup", "fits",
                 "gpus_needed", "tokens_per_s", "hours_per_epoch", "cost_usd", "breakdown_gb", "scheduling",
                 "gradient_checkpointing"],
    "properties": {
        "mode": {"enum": ["full", "lora", "qlora", "dora", "dpo", "ppo"]},
        "micro_batch": {"type": "integer", "minimum": 1},
        "seq_len": {"type": "integer", "minimum": 1},
        "peak_memory_gb": {"type": "number", "exclusiveMinimum": 0},
        "lean_peak_memory_gb": {"type": "number", "exclusiveMinimum": 0},
        "lean_setup": {"type": "object", "required": ["micro_batch", "seq_len", "gradient_checkpointing", "gpus",
                                                      "sharding"]},
        "gradient_checkpointing": {"type": "boolean"},
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


def test_memory_alone_needs_no_dataset_size_and_says_what_does(capsys):
    out = _run_json(capsys, "--params", "7e9", "--gpu", "h100-80gb")
    assert out["dataset"] is None
    assert out["recommendation"]["mode"] == "lora"
    for mode in out["modes"]:
        assert mode["peak_memory_gb"] > 0 and mode["tokens_per_s"] > 0
        assert mode["hours_per_epoch"] is None and mode["cost_usd"] is None and mode["cost_range_usd"] is None
    assert "spot" not in out["extra_costs"] and "cloud_vs_owned" not in out["extra_costs"]
    assert any("no dataset size" in a and "micro-batch 4 x 1024" in a for a in out["assumptions"])
    _cli("plan", "--params", "7e9", "--gpu", "h100-80gb")
    text = capsys.readouterr().out
    assert "time and cost need it (--data FILE, --tokens N or --examples N)" in " ".join(text.split())


def test_a_budget_without_a_dataset_size_is_not_silently_passed(capsys):
    out = _run_json(capsys, "--params", "7e9", "--gpu", "h100-80gb", "--budget", "5")
    assert any("budget is not checked" in w for w in out["recommendation"]["warnings"])


def test_the_lean_setup_sits_beside_the_chosen_peak(capsys):
    """QLoRA on a 7B at micro-batch 4 x 1024 without checkpointing peaks near 47 GiB; the same mode at
    micro-batch 1 with gradient checkpointing, the setup the articles quote, needs under 10."""
    out = _run_json(capsys, "--params", "7e9", "--gpu", "h100-80gb", "--tokens", "10000000")
    qlora = next(m for m in out["modes"] if m["mode"] == "qlora")
    assert (qlora["micro_batch"], qlora["seq_len"], qlora["gradient_checkpointing"]) == (4, 1024, False)
    assert 40 < qlora["peak_memory_gb"] < 50
    assert qlora["lean_setup"] == {"micro_batch": 1, "seq_len": 1024, "gradient_checkpointing": True, "gpus": 1,
                                   "sharding": "none"}
    assert 5 < qlora["lean_peak_memory_gb"] < 10
    assert all(m["lean_peak_memory_gb"] <= m["peak_memory_gb"] for m in out["modes"])
    _cli("plan", "--params", "7e9", "--gpu", "h100-80gb", "--tokens", "10000000")
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("qlora ") and "4x1024" in line)
    assert f"{qlora['peak_memory_bytes'] / 2**30:.1f}" in row and f"{qlora['lean_peak_memory_bytes'] / 2**30:.2f}" in row
    assert any(line.startswith("dora ") and "4x1024 ckpt" in line for line in text.splitlines())


@pytest.mark.parametrize("args", [("--params", "7e9", "--gpu", "h100-80gb", "--tokens", "10000000"),
                                  ("--params", "70e9", "--gpu", "a100-40gb", "--gpus", "8", "--examples", "5000")])
def test_plan_tables_are_readable_at_80_columns(capsys, args):
    with pytest.raises(SystemExit):
        main(["plan", *args])
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    header = next(line for line in text.splitlines() if line.startswith("mode ") and "lean" in line)
    assert header.split() == ["mode", "setup", "peak", "lean", "weights", "grads", "optim", "activ", "models", "other"]
