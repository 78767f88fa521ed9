"""The merged-weight LoRA path computes what peft computes, and steps aside where it does not apply."""

from __future__ import annotations

import copy

import pytest
import torch

from tunewise.methods._lora_common import LoraOptions, build_lora_model
from tunewise.train.fused_lora import fuse_lora_layers


def _lora(tiny_model_dir, **options):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    dora = options.pop("dora", False)
    model = build_lora_model(base, LoraOptions(r=4, alpha=8, **options), use_dora=dora)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; give it values so every gradient path is exercised
            torch.nn.init.normal_(p, std=0.02)
    return model


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def test_same_loss_and_gradients_as_peft(tiny_model_dir):
    reference = _lora(tiny_model_dir, dropout=0.0)
    fused = copy.deepcopy(reference)
    assert fuse_lora_layers(fused) == 2 * 7  # every linear of both layers (all-linear)
    assert fuse_lora_layers(fused) == 0  # applying it twice changes nothing
    ids = torch.randint(0, reference.config.vocab_size, (2, 24))
    expected_loss, expected = _loss_and_grads(reference, ids)
    loss, grads = _loss_and_grads(fused, ids)
    assert torch.allclose(loss, expected_loss, rtol=1e-5)
    assert grads.keys() == expected.keys() and any("lora_A" in n for n in grads)
    for name, grad in grads.items():
        assert torch.allclose(grad, expected[name], atol=1e-6, rtol=1e-4), name


def test_inference_and_disabled_adapters_use_peft(tiny_model_dir):
    reference = _lora(tiny_model_dir, dropout=0.0)
    fused = copy.deepcopy(reference)
    fuse_lora_layers(fused)
    ids = torch.randint(0, reference.config.vocab_size, (1, 12))
    with torch.no_grad():
        assert torch.allclose(fused(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)
        with fused.disable_adapter(), reference.disable_adapter():  # how alignment gets its reference model
            assert torch.allclose(fused(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)


@pytest.mark.parametrize("options", [{"dropout": 0.1}, {"dropout": 0.0, "dora": True}, {"dropout": 0.0, "bf16": True}])
def test_dropout_dora_and_bf16_keep_peft_forward(tiny_model_dir, options, monkeypatch):
    import tunewise.train.fused_lora as fused_lora

    options = dict(options)
    bf16 = options.pop("bf16", False)
    model = _lora(tiny_model_dir, **options)
    if bf16:
        model.to(torch.bfloat16)
    fuse_lora_layers(model)
    calls = []
    monkeypatch.setattr(fused_lora._MergedLoraLinear, "apply", lambda *a: calls.append(a))
    _loss_and_grads(model, torch.randint(0, model.config.vocab_size, (1, 8)))
    assert calls == []


def test_dropout_switched_off_afterwards_counts_as_none(tiny_model_dir, monkeypatch):
    """TRL's trainers set p=0 on the dropout modules peft made; the merged path then applies."""
    import tunewise.train.fused_lora as fused_lora

    model = _lora(tiny_model_dir, dropout=0.1)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    fuse_lora_layers(model)
    calls = []
    real_apply = fused_lora._MergedLoraLinear.apply
    monkeypatch.setattr(fused_lora._MergedLoraLinear, "apply", lambda *a: calls.append(1) or real_apply(*a))
    _loss_and_grads(model, torch.randint(0, model.config.vocab_size, (1, 8)))
    assert len(calls) == 2 * 7

