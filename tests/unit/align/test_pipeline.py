"""Chained stages: sft then dpo on the SFT output, as one job."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import write_chat_dataset
from tests.unit.align.conftest import FIXTURES
from tunewise.spec_stages import stage_dicts
from tunewise.cli import main
from tunewise.errors import SpecError
from tunewise.spec import load_spec
from tunewise.train.run import read_status, run_stages, run_training_job
from tunewise.workspace import runs_dir


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


def _spec(**top) -> dict:
    return {"data": {"train": "x.jsonl"}, **top}


def test_a_staged_spec_needs_no_data_of_its_own_when_every_stage_has_some():
    spec = load_spec(raw={"data": {"max_length": 64},  # shared by the stages
                          "stages": [{"data": {"train": "chat.jsonl"}},
                                     {"method": "dpo", "data": {"train": "prefs.jsonl", "max_length": 32}}]})
    assert spec.data is None and spec.method.name == "lora"
    first, second = spec.stage_specs(job_name="j")
    assert first["data"] == {"max_length": 64, "train": "chat.jsonl"}
    assert second["data"] == {"max_length": 32, "train": "prefs.jsonl"} and second["method"] == "dpo"


@pytest.mark.parametrize("raw, message", [
    ({}, "data: a job spec needs data.train"),
    ({"stages": []}, "stages: expected a non-empty list"),
    (_spec(stages="lora"), "stages: Input should be a valid list"),
    (_spec(stages=["lora"]), r"stages\.0: Input should be a valid dictionary"),
    (_spec(stages=[{"base_model": "x"}]), r"stages\[0\]: unknown keys \['base_model'\]"),
    (_spec(stages=[{"data": "prefs.jsonl"}]), r"stages\[0\]\.data: expected a mapping"),
    ({"stages": [{"method": "lora"}]}, r"stages\[0\]\.data: a job spec needs data.train"),
    (_spec(stages=[{}, {"method": {"name": "dpo", "beta": 0}}]), r"stages\[1\]\.method\.beta"),
    (_spec(stages=[{"train": {"epochs": -1}}]), r"stages\[0\]\.train\.epochs"),
])
def test_bad_stages_are_refused_before_anything_trains(raw, message):
    with pytest.raises(SpecError, match=message):
        load_spec(raw=raw)


def test_sft_then_dpo_runs_as_one_job_from_tunewise_train(tiny_model_dir, tmp_path):
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
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(spec_file)])
    assert exit_info.value.code == 0
    sft_dir, dpo_dir = runs_dir() / "chain-1-lora", runs_dir() / "chain-2-dpo"
    assert read_status(sft_dir)["state"] == read_status(dpo_dir)["state"] == "completed"
    assert not (runs_dir() / "chain").exists()  # the staged spec itself is no run
    merged = sft_dir / "merged"
    assert (merged / "config.json").is_file()  # the SFT adapter folded into full weights
    info = json.loads((dpo_dir / "artifact" / "tunewise.json").read_text())
    assert info["method"] == "dpo" and info["base_model"] == str(merged)

    again = run_stages(spec_file)  # a re-run finds both stages complete
    assert all(r.already_done for r in again)
    last = run_training_job(load_spec(spec_file), spec_path=spec_file)  # the last stage's result, as for one run
    assert last.already_done and last.run_dir == dpo_dir
