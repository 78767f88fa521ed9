"""Shared fixtures: an isolated workspace per test, the bundled tokenizer, and a tiny random Llama."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One converted copy of the bundled model for the whole test session (conversion takes ~40 s).
MODEL_CACHE = Path(os.environ.get("TUNEWISE_TEST_MODEL_CACHE", Path(__file__).parent.parent / ".tunewise" / "models"))
os.environ["TUNEWISE_MODEL_CACHE"] = str(MODEL_CACHE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch) -> Path:
    """Every test gets its own TUNEWISE_HOME; the model cache stays shared."""
    home = tmp_path / "home"
    monkeypatch.setenv("TUNEWISE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    from tunewise.models import resolve_base_model

    return resolve_base_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tokenizer(bundled_model_dir):
    from tunewise.models.load import load_tokenizer

    return load_tokenizer(bundled_model_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(bundled_model_dir, tokenizer, tmp_path_factory) -> Path:
    """A 2-layer, hidden-64 random Llama with the bundled tokenizer and chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store migrated once per session (migrating takes seconds); tests copy it."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return db
