"""A merged adapter gives the same logits as base + adapter."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny_spec, write_chat_dataset
from tunewise.errors import ModelError
from tunewise.models import resolve_device_policy
from tunewise.models.artifact import load_artifact
from tunewise.models.merge import merge_run
from tunewise.spec import SpecWarning, load_spec
from tunewise.train.run import run_training_job


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_merged_model_matches_adapter_logits(method, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = write_chat_dataset(tmp_path / "train.jsonl")
    with pytest.warns(SpecWarning, match="outside the usual"):  # a large step, so a few steps move the adapter
        spec = load_spec(raw=tiny_spec(tiny_model_dir, data, method, learning_rate=1e-2))
    run = run_training_job(spec).run_dir
    merged_dir = merge_run(run, tmp_path / "merged")
    assert not (merged_dir / "adapter_config.json").exists()

    adapted, tokenizer, _ = load_artifact(run, resolve_device_policy("cpu", "fp32"))
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    ids = tokenizer("The quick brown fox", return_tensors="pt")
    with torch.no_grad():
        expected = adapted(**ids).logits
        got = merged(**ids).logits
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()


def test_merge_refuses_full_model_and_non_empty_target(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path / "train.jsonl")
    run = run_training_job(load_spec(raw=tiny_spec(tiny_model_dir, data, "full"))).run_dir
    with pytest.raises(ModelError, match="no adapter"):
        merge_run(run, tmp_path / "out")
