"""Training throughput from FLOPs: tokens/s = devices x peak FLOP/s x efficiency / FLOPs per token.

FLOPs per token follow the usual accounting for a dense decoder: a forward pass costs 2 FLOPs per
weight used in a matmul plus the attention scores; the backward pass costs twice the forward when
weights are trained (gradients for inputs and for weights) and once the forward when they are
frozen (gradients for inputs only, as under LoRA). Gradient checkpointing adds one more forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.plan.architecture import ModelShape
from tunewise.plan.memory import TrainSetup, adapter_params


@dataclass(frozen=True)
class FlopsPerToken:
    forward: float
    total: float  # everything a training token costs in this mode
    detail: str


def forward_flops_per_token(shape: ModelShape, seq_len: int) -> float:
    """Matmul weights (blocks and output head; the embedding lookup is free) and causal attention."""
    matmul_weights = shape.linear_params + shape.vocab_size * shape.hidden_size
    # QK^T and AV: 2 FLOPs x seq x q_dim each per token; causal masking halves the work.
    attention = 2 * seq_len * shape.q_dim * shape.num_layers
    return 2 * matmul_weights + attention


def flops_per_token(shape: ModelShape, setup: TrainSetup) -> FlopsPerToken:
    fwd = forward_flops_per_token(shape, setup.seq_len)
    recompute = fwd if setup.gradient_checkpointing else 0.0
    adapter_fwd = 2 * adapter_params(shape, setup) if setup.mode != "full" else 0.0

    def trained(full: bool) -> float:
        if full:
            return 3 * fwd + recompute
        # frozen base: forward + input gradients; adapters: forward, input and weight gradients
        return 2 * fwd + 3 * adapter_fwd + recompute

    mode = setup.mode
    if mode == "full":
        return FlopsPerToken(fwd, trained(True), "forward + backward for weights and inputs (3x forward)")
    if mode in ("lora", "qlora"):
        return FlopsPerToken(fwd, trained(False), "frozen base: forward + input gradients (2x forward)")
    if mode == "dora":
        # With dropout peft recomputes the base output on the dropped input: one more pass through
        # every linear weight, forward and backward.
        extra = 4 * shape.linear_params if setup.lora.dropout > 0 else 0.0
        return FlopsPerToken(fwd, trained(False) + extra, "as LoRA, plus the base output recomputed for the magnitude")
    policy_full = setup.policy != "lora"
    if mode == "dpo":
        # Counted per dataset token (chosen and rejected both are tokens of the file): policy trained,
        # reference forward (a copy, or the base with the adapter disabled).
        return FlopsPerToken(fwd, trained(policy_full) + fwd, "policy training + reference forward")
    # ppo: generate the rollout, score it with the reference and reward models, then train the policy
    # and the value model on it.
    total = fwd + fwd + fwd + 2 * trained(policy_full)
    return FlopsPerToken(fwd, total, "rollout + reference + reward forwards, policy and value training")


def tokens_per_second(flops: FlopsPerToken, *, peak_tflops: float, efficiency: float, devices: float) -> float:
    return devices * peak_tflops * 1e12 * efficiency / flops.total
