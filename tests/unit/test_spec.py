"""Job spec loading: defaults, overrides, warnings, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.errors import SpecError
from tunewise.spec import SpecWarning, load_spec

ROOT = Path(__file__).resolve().parents[2]


def test_mode_aware_defaults():
    lora = load_spec(raw={"data": {"train": "x.jsonl"}})
    full = load_spec(raw={"data": {"train": "x.jsonl"}, "method": "full"})
    assert lora.resolved_learning_rate() == 2e-4 and full.resolved_learning_rate() == 2e-5
    assert lora.method_config().resolved_alpha == 32
    assert lora.train.lr_scheduler == "cosine" and lora.train.warmup_ratio == 0.03
    assert lora.method_config().target_modules == "all-linear"


def test_dotted_overrides_parse_yaml_scalars():
    spec = load_spec(raw={"data": {"train": "x.jsonl"}},
                     overrides=["train.learning_rate=1e-4", "method.r=8", "data.packing=false", "method.name=dora"])
    assert spec.train.learning_rate == 1e-4 and spec.method.name == "dora"
    assert spec.method_config().r == 8 and spec.data.packing is False


def test_unusual_values_warn_with_reason():
    with pytest.warns(SpecWarning, match="outside the usual.*full"):
        load_spec(raw={"data": {"train": "x"}, "method": "full", "train": {"learning_rate": 2e-4}})
    with pytest.warns(SpecWarning, match="alpha <= r"):
        load_spec(raw={"data": {"train": "x"}, "method": {"name": "lora", "r": 16, "alpha": 16}})


@pytest.mark.parametrize(
    "raw, overrides, message",
    [
        ({"data": {"train": "x"}, "method": "nope"}, [], "unknown method 'nope'"),
        ({"data": {"train": "x"}, "method": {"name": "lora", "r": 0}}, [], "method.r"),
        ({"data": {"train": "x"}, "method": {"name": "lora", "rank": 4}}, [], "method.rank"),
        ({"data": {"train": "x"}}, ["train.learning_rate=-1"], "train.learning_rate"),
        ({"data": {"train": "x"}}, ["train.epochs=abc"], "train.epochs"),
        ({"data": {"train": "x"}}, ["trainlr"], "key.path=value"),
        ({"data": {"train": "x"}}, ["train.bogus=1"], "train.bogus"),
        ({}, [], "data"),
        ({"data": {"train": "x", "format": "xml"}}, [], "data.format"),
        ({"data": {"train": "x"}, "checkpoint": {"keep_last": 0}}, [], "checkpoint.keep_last"),
    ],
)
def test_bad_specs_name_the_field(raw, overrides, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        load_spec(raw=raw, overrides=overrides)


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: [unclosed", r"bad\.yaml:1: not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("data:\n  train: 5\n  max_length: huge\n", "data.max_length"),
    ],
)
def test_bad_spec_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_missing_and_binary_spec_files(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "absent.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    spec = load_spec(path)
    assert spec.data.train


def test_paths_in_a_spec_file_resolve_against_its_folder(tmp_path, monkeypatch):
    import yaml

    folder = tmp_path / "job"
    (folder / "reward-run").mkdir(parents=True)
    (folder / "rules.py").write_text("def short(prompt, answer):\n    return -len(answer)\n")
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({
        "data": {"train": "prompts.jsonl"},
        "method": {"name": "grpo", "reward_model": "reward-run", "reward_functions": ["rules.py:short", "pkg.rules:f"]},
        "stages": [{"method": {"name": "ppo", "reward_model": "a-run-name"}, "data": {"train": "more.jsonl"}}],
    }))
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    spec = load_spec(spec_file)
    options = spec.method.options()
    assert options["reward_model"] == str(folder / "reward-run")
    assert options["reward_functions"] == [f"{folder / 'rules.py'}:short", "pkg.rules:f"]  # a module stays a module
    assert spec.data.train == str(folder / "prompts.jsonl")
    stage = spec.stages[0]
    assert stage["data"]["train"] == str(folder / "more.jsonl")
    assert stage["method"]["reward_model"] == "a-run-name"  # no such folder beside the spec: a run name
