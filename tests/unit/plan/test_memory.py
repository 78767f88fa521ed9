"""The memory model: activations match what autograd really keeps; the parts behave as they should."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tunewise.plan import activations as act
from tunewise.plan.architecture import shape_from_config, shape_from_params
from tunewise.plan.memory import (
    PRECISIONS,
    LoraSetup,
    TrainSetup,
    adapter_params,
    estimate_memory,
)

SEQ, BATCH = 32, 2


def _tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(config), shape_from_config(config.to_dict())


def _saved_bytes(model) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward (weights excluded)."""
    import torch

    weights = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights and tensor.is_floating_point():
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 128, (BATCH, SEQ))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(seen.values())


def _predicted(shape, setup: act.ActivationSetup, *, head_trained: bool) -> float:
    per_token = act.layer_bytes_per_token(shape, setup) * shape.num_layers
    per_token -= act.frozen_input_credit_bytes_per_token(shape, setup)
    per_token += act.head_bytes_per_token(shape, setup, head_trained=head_trained)
    return per_token * BATCH * SEQ


@pytest.mark.parametrize("dropout", [0.05, 0.0])
def test_lora_activations_match_autograd(dropout):
    from peft import LoraConfig, get_peft_model

    model, shape = _tiny_llama()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules="all-linear"))
    model.train()
    setup = act.ActivationSetup(act_bytes=4, device="cpu", trained_linears=False, trained_norms=False,
                                lora_targets=frozenset(m.name for m in shape.linear_modules()), lora_r=8,
                                lora_dropout=dropout > 0, seq_len=SEQ)
    assert _saved_bytes(model) == pytest.approx(_predicted(shape, setup, head_trained=False), rel=0.01)


def test_full_activations_match_autograd():
    model, shape = _tiny_llama()
    model.train()
    setup = act.ActivationSetup(act_bytes=4, device="cpu", trained_linears=True, trained_norms=True, seq_len=SEQ)
    assert _saved_bytes(model) == pytest.approx(_predicted(shape, setup, head_trained=True), rel=0.01)


def _gpu(mode: str, **kw) -> TrainSetup:
    return TrainSetup(mode=mode, seq_len=2048, micro_batch=1, precision=PRECISIONS["bf16"], device="cuda", **kw)


SEVEN_B = shape_from_params(7e9)


def test_mode_ordering_and_parts():
    peaks = {m: estimate_memory(SEVEN_B, _gpu(m, gradient_checkpointing=True)).peak_bytes
             for m in ("full", "lora", "qlora", "dpo", "ppo")}
    assert peaks["qlora"] < peaks["lora"] < peaks["full"] < peaks["dpo"] < peaks["ppo"]
    full = estimate_memory(SEVEN_B, _gpu("full"))
    n = SEVEN_B.total_params
    assert full.breakdown["weights"] == 2 * n  # bf16
    assert full.trainable_params == n
    assert full.breakdown["gradients"] == 2 * n  # the optimizer step is the peak: every gradient alive
    # moments (2 x 2 B) + torch's for-each scratch of one moment's size
    assert full.breakdown["optimizer_states"] == 6 * n


def test_precisions_change_bytes_per_parameter():
    n = SEVEN_B.total_params
    mixed = estimate_memory(SEVEN_B, replace(_gpu("full"), precision=PRECISIONS["mixed"]))
    assert mixed.breakdown["optimizer_states"] == 12 * n  # fp32 master + two fp32 moments, fused step
    cpu = estimate_memory(SEVEN_B, replace(_gpu("full"), precision=PRECISIONS["fp32"], device="cpu"))
    assert cpu.breakdown["weights"] == 4 * n


def test_qlora_nf4_storage_and_double_quant():
    linear = sum(m.in_features * m.out_features for m in SEVEN_B.linear_modules()) * SEVEN_B.num_layers
    dq = estimate_memory(SEVEN_B, _gpu("qlora"))
    plain = estimate_memory(SEVEN_B, replace(_gpu("qlora"), double_quant=False))
    assert plain.breakdown["quantization_constants"] == pytest.approx(linear / 64 * 4, rel=1e-6)  # fp32 absmax
    # 8-bit absmax + an fp32 constant per 256 blocks: 0.127 bits per weight instead of 0.5
    assert dq.breakdown["quantization_constants"] * 8 / linear == pytest.approx(0.127, abs=0.001)
    other = SEVEN_B.total_params - linear  # embeddings, norms, head: fp32 after prepare_model_for_kbit_training
    adapters = adapter_params(SEVEN_B, _gpu("qlora"))
    assert dq.breakdown["weights"] == int(linear * 0.5 + other * 4 + adapters * 4)


def test_lora_rank_and_targets_size_the_adapter():
    q_v = replace(_gpu("lora"), lora=LoraSetup(r=16, targets=("q_proj", "v_proj")))
    assert adapter_params(SEVEN_B, q_v) == 32 * 2 * 16 * (4096 + 4096)  # 8.4M, as in the LoRA paper's setup
    r64 = replace(_gpu("lora"), lora=LoraSetup(r=64))
    assert adapter_params(SEVEN_B, r64) == 4 * adapter_params(SEVEN_B, _gpu("lora"))
    dora = adapter_params(SEVEN_B, _gpu("dora"))
    assert dora - adapter_params(SEVEN_B, _gpu("lora")) == 32 * (5 * 4096 + 2 * 11008)  # one magnitude per output


def test_checkpointing_keeps_only_layer_inputs():
    plain = estimate_memory(SEVEN_B, _gpu("lora"))
    ckpt = estimate_memory(SEVEN_B, _gpu("lora", gradient_checkpointing=True))
    assert ckpt.breakdown["activations"] < plain.breakdown["activations"] / 5


def test_sharding_divides_states_across_gpus():
    none = estimate_memory(SEVEN_B, _gpu("full", gradient_checkpointing=True))
    zero2 = estimate_memory(SEVEN_B, _gpu("full", gradient_checkpointing=True, num_gpus=4, sharding="zero2"))
    zero3 = estimate_memory(SEVEN_B, _gpu("full", gradient_checkpointing=True, num_gpus=4, sharding="zero3"))
    assert zero3.peak_bytes < zero2.peak_bytes < none.peak_bytes
    assert zero2.breakdown["weights"] == none.breakdown["weights"]  # ZeRO-2 keeps whole weights
    assert zero3.breakdown["weights"] < none.breakdown["weights"] / 3


def test_alignment_extra_models():
    dpo_full = estimate_memory(SEVEN_B, _gpu("dpo", policy="full", gradient_checkpointing=True))
    dpo_lora = estimate_memory(SEVEN_B, _gpu("dpo", policy="lora", gradient_checkpointing=True))
    assert dpo_full.breakdown["reference_model"] == 2 * SEVEN_B.total_params
    assert "reference_model" not in dpo_lora.breakdown  # the base with the adapter disabled
    ppo = estimate_memory(SEVEN_B, _gpu("ppo", gradient_checkpointing=True))
    assert {"reference_model", "reward_model", "value_model"} <= set(ppo.breakdown)
    assert ppo.breakdown["value_model"] > 8 * SEVEN_B.total_params  # trained: weights, gradients, moments
