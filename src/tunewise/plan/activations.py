"""Activation memory: the tensors autograd keeps between the forward and the backward pass.

Counted per token and per decoder layer from what each operation of a Llama-style block (as
transformers and peft implement it) saves for its backward, not from a rule of thumb:

  RMSNorm      its fp32 view of the input (the residual itself in fp32, an upcast copy in bf16) and
               1/rms; the normalized tensor too when the norm weight is trained
  linear       its input, only when its weight is trained (a frozen or 4-bit weight needs none)
  LoRA         per adapted module: the dropout mask and the dropped input (or the shared input when
               dropout is 0), cast to the adapter's fp32 first on a bf16 base; lora_A's r outputs
  DoRA         also the base and low-rank outputs, which the magnitude scales
  attention    rotated q and k, v, the output and the log-sum-exp (memory-efficient SDPA kernel);
               the eager kernel keeps the seq x seq probabilities as well
  SwiGLU MLP   gate and up outputs and silu(gate); their product when down_proj is trained
  loss         the fp32 log-softmax over the vocabulary

Checked against the storages torch's saved-tensor hooks report (tests/unit/plan/test_memory.py): in
fp32 on CPU a layer keeps 8h + 4i + 2kv + heads + 2 elements per token under full fine-tuning and
16h + 5i + 2kv + 7r + heads + 2 under LoRA (dropout 0.05, all linear layers), as computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.plan.architecture import ModelShape

FP32 = 4


@dataclass(frozen=True)
class ActivationSetup:
    act_bytes: int  # bytes of the hidden states (4 fp32, 2 bf16)
    device: str  # "cpu" or "cuda": dropout keeps a float mask on CPU, a bool mask on CUDA
    trained_linears: bool  # full fine-tuning: every weight trained
    trained_norms: bool
    lora_targets: frozenset[str] = frozenset()  # module names carrying adapters
    lora_r: int = 0
    lora_dropout: bool = False
    adapter_bytes: int = FP32  # peft keeps adapters in fp32 on a 16-bit base
    dora: bool = False
    attention: str = "sdpa"  # "sdpa" (memory-efficient kernel) or "eager"
    seq_len: int = 1024


def _norm_bytes(shape: ModelShape, s: ActivationSetup) -> float:
    saved = FP32 * shape.hidden_size + FP32  # input in fp32 and 1/rms
    if s.trained_norms:
        saved += s.act_bytes * shape.hidden_size  # the normalized tensor, for the weight's gradient
    return saved


def _lora_input_bytes(in_features: int, s: ActivationSetup) -> float:
    """What one adapted module keeps of its input for lora_A's gradient."""
    mask = s.act_bytes if s.device == "cpu" else 1  # CPU dropout multiplies by a float noise tensor
    if s.lora_dropout:
        return (mask + s.adapter_bytes) * in_features
    # No dropout: lora_A keeps its input; it is a private fp32 copy only when the base is 16-bit.
    return s.adapter_bytes * in_features if s.adapter_bytes != s.act_bytes else 0.0


def _shared_input_saved(names: tuple[str, ...], s: ActivationSetup) -> bool:
    """Is the tensor feeding these modules kept once, shared by them?"""
    if s.trained_linears:
        return True
    shared_by_lora = not s.lora_dropout and s.adapter_bytes == s.act_bytes
    return shared_by_lora and any(n in s.lora_targets for n in names)


def layer_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """Bytes autograd keeps per token for one decoder layer."""
    a, h, i = s.act_bytes, shape.hidden_size, shape.intermediate_size
    total = 2 * _norm_bytes(shape, s)
    # Attention inputs (norm output), then what the kernel keeps.
    if _shared_input_saved(("q_proj", "k_proj", "v_proj"), s):
        total += a * h
    total += a * (2 * shape.q_dim + 2 * shape.kv_dim) + FP32 * shape.num_heads  # q, k, v, out, lse
    if s.attention == "eager":
        total += (FP32 + a) * shape.num_heads * s.seq_len  # fp32 softmax and its cast, per query row
        if shape.num_kv_heads != shape.num_heads:
            total += 2 * a * shape.q_dim  # k and v repeated to every query head
    # MLP input (norm output) and the activations the nonlinearity keeps.
    mlp_inputs = ("gate_proj", "up_proj") if shape.gated_mlp else ("up_proj",)
    if _shared_input_saved(mlp_inputs, s):
        total += a * h
    total += a * i * (3 if shape.gated_mlp else 1)  # gate, up, silu(gate) | up (GELU input)
    if _shared_input_saved(("down_proj",), s):
        total += a * i  # down_proj's input: silu(gate) * up, or gelu(up)
    # Adapters: per adapted module its own copy of the input and r outputs of lora_A.
    for module in shape.linear_modules():
        if module.name not in s.lora_targets:
            continue
        total += _lora_input_bytes(module.in_features, s) + s.adapter_bytes * s.lora_r
        if s.dora:
            total += (a + s.adapter_bytes) * module.out_features  # base and low-rank outputs
    return total


def frozen_input_credit_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """What the first layer does not keep when the embeddings are frozen (adapter modes): its input
    needs no gradient, so its first norm keeps nothing and dropout keeps no mask for q, k and v."""
    if s.trained_linears:
        return 0.0
    credit = FP32 * shape.hidden_size + FP32
    if s.lora_dropout:
        mask = s.act_bytes if s.device == "cpu" else 1
        adapted = [n for n in ("q_proj", "k_proj", "v_proj") if n in s.lora_targets]
        credit += mask * shape.hidden_size * len(adapted)
    return credit


def checkpointed_layer_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """With gradient checkpointing a layer keeps only its input; the rest is recomputed."""
    return s.act_bytes * shape.hidden_size


def head_bytes_per_token(shape: ModelShape, s: ActivationSetup, *, head_trained: bool) -> float:
    """Final norm, the head's input when the head is trained, and the fp32 log-softmax of the loss."""
    saved = _norm_bytes(shape, s) + FP32 * shape.vocab_size
    if head_trained:
        saved += s.act_bytes * shape.hidden_size
    return saved


def loss_backward_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """Scratch at the start of the backward pass: the fp32 gradients of the log-softmax and of the
    logits (and the logits' gradient cast back to 16 bits on a bf16 model)."""
    extra = s.act_bytes if s.act_bytes != FP32 else 0
    return (2 * FP32 + extra) * shape.vocab_size


def backward_workspace_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """Gradients of one layer's largest intermediates, alive together inside its backward."""
    return 3 * s.act_bytes * shape.intermediate_size
