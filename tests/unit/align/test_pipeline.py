"""Chained stages: sft then dpo on the SFT output, as one job."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import write_chat_dataset
from tests.unit.align.conftest import FIXTURES
from tunewise.align.pipeline import run_stages, stage_dicts
from tunewise.errors import SpecError


def test_stage_dicts_merge_sections_and_replace_the_method():
    raw = {"name": "bot", "base_model": "m", "method": {"name": "lora", "r": 8},
           "data": {"train": "chat.jsonl", "max_length": 64}, "train": {"max_steps": 3, "seed": 5},
           "stages": [{}, {"method": {"name": "dpo", "beta": 0.2}, "data": {"train": "prefs.jsonl"},
                           "train": {"learning_rate": 5e-5}}]}
    first, second = stage_dicts(raw, job_name="bot")
    assert first["name"] == "bot-1-lora" and first["method"] == {"name": "lora", "r": 8}
    assert second["name"] == "bot-2-dpo" and second["method"] == {"name": "dpo", "beta": 0.2}
    assert second["data"] == {"train": "prefs.jsonl", "max_length": 64}
    assert second["train"] == {"max_steps": 3, "seed": 5, "learning_rate": 5e-5}
    assert "stages" not in second


def test_stage_errors_name_the_stage():
    with pytest.raises(SpecError, match="non-empty list"):
        stage_dicts({"stages": []}, job_name="j")
    with pytest.raises(SpecError, match=r"stages\[1\]: unknown keys \['base_model'\]"):
        stage_dicts({"stages": [{}, {"base_model": "x"}]}, job_name="j")


def test_sft_then_dpo_runs_as_one_job_from_a_yaml_file(tiny_model_dir, tmp_path):
    write_chat_dataset(tmp_path / "chat.jsonl", rows=12)
    (tmp_path / "prefs.jsonl").write_text((FIXTURES / "pairs.jsonl").read_text())
    spec_file = tmp_path / "chain.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": "chain", "base_model": str(tiny_model_dir),
        "data": {"train": "chat.jsonl", "max_length": 96, "val_fraction": 0.2},  # relative to the spec file
        "train": {"max_steps": 2, "micro_batch_size": 2, "seed": 1, "precision": "fp32", "device": "cpu"},
        "checkpoint": {"every_steps": 2},
        "eval": {"enabled": False}, "tracking": {"enabled": False},
        "stages": [{"method": {"name": "lora", "r": 4}},
                   {"method": {"name": "dpo", "lora": {"r": 4}}, "data": {"train": "prefs.jsonl"}}],
    }))
    sft, dpo = run_stages(spec_file)
    assert sft.run_dir.name == "chain-1-lora" and dpo.run_dir.name == "chain-2-dpo"
    merged = sft.run_dir / "merged"
    assert (merged / "config.json").is_file()  # the SFT adapter folded into full weights
    info = json.loads((dpo.run_dir / "artifact" / "tunewise.json").read_text())
    assert info["method"] == "dpo" and info["base_model"] == str(merged)

    again = run_stages(spec_file)  # a re-run finds both stages complete
    assert all(r.already_done for r in again)
