"""Run names and checkpoint directories stay inside the workspace and the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.errors import SpecError
from tunewise.spec import load_spec
from tunewise.train.checkpoint import CheckpointManager
from tunewise.train.run import run_name_for

BASE = {"data": {"train": "train.jsonl"}}


@pytest.mark.parametrize("name", ["../x", ".", "..", "/abs/path", "a/b", "a\0b", "n" * 101, "-dash-first", ""])
def test_names_that_are_not_one_plain_path_part_are_refused(name):
    with pytest.raises(SpecError, match="name"):
        load_spec(raw={**BASE, "name": name})


@pytest.mark.parametrize("name", ["support-bot", "v1.2_lora", "A" * 100])
def test_plain_names_are_kept(name):
    assert load_spec(raw={**BASE, "name": name}).name == name


def test_a_derived_name_is_cleaned_from_an_odd_spec_file_name():
    spec = load_spec(raw=BASE)
    assert run_name_for(spec, "/tmp/my spec (v2)!.yaml").startswith("my-spec-v2-")
    assert run_name_for(spec, "/tmp/...yaml").startswith("job-")


def test_a_relative_checkpoint_dir_is_inside_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(raw={**BASE, "checkpoint": {"dir": "ckpt/here"}})
    manager = CheckpointManager.from_spec(spec.checkpoint, tmp_path / "runs" / "r1")
    assert Path(manager.root) == tmp_path / "runs" / "r1" / "ckpt" / "here"
    default = CheckpointManager.from_spec(load_spec(raw=BASE).checkpoint, tmp_path / "runs" / "r1")
    assert Path(default.root) == tmp_path / "runs" / "r1" / "checkpoints"


@pytest.mark.parametrize("where", ["../elsewhere", "a/../../b"])
def test_a_relative_checkpoint_dir_may_not_leave_the_run(where):
    with pytest.raises(SpecError, match="checkpoint.dir"):
        load_spec(raw={**BASE, "checkpoint": {"dir": where}})


def test_absolute_paths_and_urls_are_allowed_for_checkpoints(tmp_path):
    assert load_spec(raw={**BASE, "checkpoint": {"dir": str(tmp_path / "c")}}).checkpoint.dir == str(tmp_path / "c")
    assert load_spec(raw={**BASE, "checkpoint": {"dir": "s3://bucket/run"}}).checkpoint.dir == "s3://bucket/run"
