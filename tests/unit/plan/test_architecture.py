"""Parameter counts from a config match what torch counts on the real model."""

from __future__ import annotations

import json

import pytest

from tunewise.plan.architecture import (
    shape_from_config,
    shape_from_model_dir,
    shape_from_params,
)


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_tiny_model_count_matches_torch(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    shape = shape_from_model_dir(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert shape.total_params == _numel(model)
    assert shape.num_kv_heads == 2 and shape.tied_embeddings


def test_bundled_model_count_matches_torch(bundled_model_dir):
    from transformers import AutoModelForCausalLM

    shape = shape_from_model_dir(bundled_model_dir)
    model = AutoModelForCausalLM.from_pretrained(bundled_model_dir)
    counts = shape.param_counts()
    assert counts["total"] == _numel(model) == 134_515_008
    emb = model.get_input_embeddings().weight.numel()
    assert counts["embeddings"] == emb
    assert counts["lm_head"] == 0  # tied: the head is the embedding matrix
    attn = sum(p.numel() for n, p in model.named_parameters() if ".self_attn." in n)
    mlp = sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    assert (counts["attention"], counts["mlp"]) == (attn, mlp)


@pytest.mark.parametrize(
    "family",
    [
        # untied head, GQA, q/k/v biases (Qwen2)
        ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=False)),
        # per-head q/k norms (Qwen3)
        ("Qwen3Config", "Qwen3ForCausalLM", dict(tie_word_embeddings=True, head_dim=16)),
        # plain MLP, LayerNorm with biases, learned positions (GPT-2)
        ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, n_positions=128)),
        # untied Llama with attention and MLP biases
        ("LlamaConfig", "LlamaForCausalLM", dict(tie_word_embeddings=False, attention_bias=True, mlp_bias=True)),
    ],
)
def test_other_families_match_torch(family, tmp_path):
    import transformers

    config_name, model_name, extra = family
    base = dict(vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2)
    if config_name == "GPT2Config":
        base = dict(vocab_size=500)
    config = getattr(transformers, config_name)(**base, **extra)
    model = getattr(transformers, model_name)(config)
    config.save_pretrained(tmp_path)
    shape = shape_from_config(json.loads((tmp_path / "config.json").read_text()))
    assert shape.total_params == _numel(model), shape.param_counts()


def test_params_only_assumes_a_llama_shape_and_says_so():
    shape = shape_from_params(7e9)
    assert shape.assumed and "llama-2-7b" in shape.source
    assert (shape.num_layers, shape.hidden_size, shape.vocab_size) == (32, 4096, 32000)
    assert abs(shape.total_params - 6.74e9) < 0.01e9
    seventy = shape_from_params(70e9)
    assert seventy.num_kv_heads == 8 and seventy.num_layers == 80


def test_params_with_given_numbers_and_solved_layers():
    shape = shape_from_params(20e9)  # between the 13B and 34B shapes: layers solved for the size
    assert abs(shape.total_params / 20e9 - 1) < 0.05
    assert "layers to reach" in shape.source
    given = shape_from_params(7e9, layers=16, hidden=2048, vocab=50000)
    assert (given.num_layers, given.hidden_size, given.vocab_size) == (16, 2048, 50000)
    assert given.num_heads == 2048 // 128
    assert "given: layers=16" in given.source
