"""Peak training memory per device, from the model's shape and the training setup.

Nothing here is a constant multiplier of the parameter count. Each part is sized from first
principles: which parameters each mode stores in which precision, which it trains (gradients,
AdamW moments, master copies), the 4-bit NF4 blocks and their constants, the activations autograd
keeps (tunewise.plan.activations), the extra models of DPO and PPO, and how ZeRO/FSDP shard it all.

The peak is the largest of the moments a training step passes through, since activations and
gradients are not all alive at once: activations are freed layer by layer as gradients appear.
  backward start   weights + states + every saved activation + the loss's gradient buffers
  optimizer step   weights + states + every gradient + the step's scratch
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tunewise.plan import activations as act
from tunewise.plan.architecture import ModelShape
from tunewise.plan.hardware import GIB

MODES = ("full", "lora", "qlora", "dora", "dpo", "ppo")
NF4_BLOCK = 64  # weights per absmax constant (QLoRA)
DOUBLE_QUANT_BLOCK = 256  # absmax constants per second-level fp32 constant
OPTIMIZER_8BIT_BLOCK = 256  # bitsandbytes block-wise 8-bit optimizer states


@dataclass(frozen=True)
class Precision:
    """Bytes per element of each part of a training run."""

    name: str
    weight_bytes: int  # the model's weights
    grad_bytes: int
    state_bytes: int  # each AdamW moment
    master_bytes: int  # fp32 master copy of trained weights (mixed precision), else 0
    act_bytes: int  # hidden states


PRECISIONS = {
    # The CPU policy: everything fp32.
    "fp32": Precision("fp32", 4, 4, 4, 0, 4),
    # The CUDA policy: bf16 weights and torch AdamW, whose moments take the parameter's dtype.
    "bf16": Precision("bf16", 2, 2, 2, 0, 2),
    # DeepSpeed/Megatron mixed precision: bf16 weights and gradients, fp32 master copy and moments.
    "mixed": Precision("mixed", 2, 2, 4, 4, 2),
}
OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit")
SHARDINGS = ("none", "zero2", "zero3")  # zero3 stands for FSDP full sharding too


@dataclass(frozen=True)
class LoraSetup:
    r: int = 16
    targets: tuple[str, ...] | str = "all-linear"
    dropout: float = 0.0  # the job spec default

    def target_names(self, shape: ModelShape) -> frozenset[str]:
        names = {m.name for m in shape.linear_modules()}
        if self.targets == "all-linear":
            return frozenset(names)
        wanted = {self.targets} if isinstance(self.targets, str) else set(self.targets)
        return frozenset(names & wanted)


@dataclass(frozen=True)
class TrainSetup:
    mode: str
    seq_len: int = 1024
    micro_batch: int = 4
    precision: Precision = PRECISIONS["bf16"]
    device: str = "cuda"
    gradient_checkpointing: bool = False
    optimizer: str = "adamw"
    lora: LoraSetup = LoraSetup()
    double_quant: bool = True
    num_gpus: int = 1
    sharding: str = "none"
    attention: str = "sdpa"
    policy: str = "full"  # dpo/ppo: train the policy fully, or as a LoRA adapter on a frozen (qlora: 4-bit) base
    freeze_embeddings: bool = False
    cuda_context_bytes: int = int(0.8 * GIB)
    allocator_fraction: float = 0.05
    cpu_runtime_bytes: int = 80 * 2**20


@dataclass
class MemoryEstimate:
    mode: str
    peak_bytes: int
    breakdown: dict[str, int]  # what is alive at the peak; sums to peak_bytes
    peak_phase: str
    trainable_params: int
    setup: TrainSetup
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB


@dataclass
class _ModelParts:
    """One model's memory, before the step's timeline is laid over it."""

    weights: float = 0.0
    quant_constants: float = 0.0
    grads: float = 0.0
    head_grads: float = 0.0  # gradients allocated first in the backward pass (the output head's)
    states: float = 0.0  # moments + master copy
    step_scratch: float = 0.0
    activations: float = 0.0  # saved for backward, whole micro-batch
    loss_scratch: float = 0.0  # gradient buffers of the loss, at the start of the backward pass
    layer_scratch: float = 0.0  # inside one layer's backward (and its recomputation when checkpointing)
    trainable: int = 0


def _optimizer_bytes_per_param(optimizer: str, state_bytes: int, master_bytes: int) -> float:
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2 * (1 + 4 / OPTIMIZER_8BIT_BLOCK) + master_bytes
    return 2 * state_bytes + master_bytes


def _step_scratch(optimizer: str, device: str, trainable: int, largest: int, state_bytes: int) -> float:
    """Temporaries of one AdamW step: torch's for-each kernel (CUDA default) builds sqrt(v) for all
    parameters at once; the per-tensor loop (CPU default) two temporaries of the largest tensor.
    Fused kernels (torch's fused AdamW, DeepSpeed's FusedAdam) and 8-bit optimizers need none."""
    if optimizer != "adamw":
        return 0.0
    if device == "cuda":
        return trainable * state_bytes
    return 2 * largest * state_bytes


def _nf4_bytes(params: int, double_quant: bool) -> tuple[float, float]:
    """(4-bit payload, quantization constants) for `params` weights in NF4."""
    if double_quant:  # 8-bit absmax per block plus an fp32 constant per 256 blocks
        constants = params / NF4_BLOCK * (1 + 4 / DOUBLE_QUANT_BLOCK)
    else:
        constants = params / NF4_BLOCK * 4
    return params * 0.5, constants


def _activation_setup(shape: ModelShape, s: TrainSetup, *, adapter: bool, full: bool, act_bytes: int) -> act.ActivationSetup:
    return act.ActivationSetup(
        act_bytes=act_bytes,
        device=s.device,
        trained_linears=full,
        trained_norms=full,
        lora_targets=s.lora.target_names(shape) if adapter else frozenset(),
        lora_r=s.lora.r if adapter else 0,
        lora_dropout=adapter and s.lora.dropout > 0,
        dora=adapter and s.mode == "dora",
        attention=s.attention,
        seq_len=s.seq_len,
    )


def _activations(shape: ModelShape, s: TrainSetup, a: act.ActivationSetup, *, head_trained: bool,
                 sequences: int) -> tuple[float, float, float]:
    """(saved activations, loss scratch, layer scratch) in bytes for `sequences` sequences of seq_len."""
    tokens = sequences * s.seq_len
    per_layer = act.layer_bytes_per_token(shape, a)
    if s.gradient_checkpointing:
        saved = act.checkpointed_layer_bytes_per_token(shape, a) * shape.num_layers
        recompute = per_layer  # one layer's activations rebuilt during its backward
    else:
        saved, recompute = per_layer * shape.num_layers, 0.0
        saved -= act.frozen_input_credit_bytes_per_token(shape, a)
    saved += act.head_bytes_per_token(shape, a, head_trained=head_trained)
    loss = act.loss_backward_bytes_per_token(shape, a)
    layer = recompute + act.backward_workspace_bytes_per_token(shape, a)
    return saved * tokens, loss * tokens, layer * tokens


def adapter_params(shape: ModelShape, s: TrainSetup) -> int:
    targets = s.lora.target_names(shape)
    per_layer = 0
    for m in shape.linear_modules():
        if m.name in targets:
            per_layer += s.lora.r * (m.in_features + m.out_features)
            if s.mode == "dora":
                per_layer += m.out_features  # the magnitude vector
    return per_layer * shape.num_layers


def _trained_model(shape: ModelShape, s: TrainSetup, *, adapter: bool, quantized: bool, sequences: int) -> _ModelParts:
    """A model being trained: fully, or as adapters on a frozen (optionally 4-bit) base."""
    p, counts = s.precision, shape.param_counts()
    parts = _ModelParts()
    act_bytes = p.act_bytes
    if quantized:
        # NF4 for the blocks' linear weights; prepare_model_for_kbit_training casts every other
        # weight (embeddings, norms, head, biases) to fp32, and the hidden states follow in fp32.
        linear_weights = sum(m.in_features * m.out_features for m in shape.linear_modules()) * shape.num_layers
        payload, constants = _nf4_bytes(linear_weights, s.double_quant)
        parts.weights = payload + (counts["total"] - linear_weights) * 4
        parts.quant_constants = constants
        act_bytes = 4
    else:
        parts.weights = counts["total"] * p.weight_bytes
    if adapter:
        trainable = adapter_params(shape, s)
        # peft keeps adapters in fp32 (autocast_adapter_dtype), so no master copy is needed.
        parts.weights += trainable * 4
        parts.grads = trainable * 4
        parts.states = trainable * _optimizer_bytes_per_param(s.optimizer, 4, 0)
        largest = max(s.lora.r * m.in_features for m in shape.linear_modules())
        parts.step_scratch = _step_scratch(s.optimizer, s.device, trainable, largest, 4)
        head_trained = False
    else:
        frozen = counts["embeddings"] if s.freeze_embeddings and not shape.tied_embeddings else 0
        trainable = counts["total"] - frozen
        parts.grads = trainable * p.grad_bytes
        head = shape.vocab_size * shape.hidden_size
        parts.head_grads = head * p.grad_bytes
        parts.states = trainable * _optimizer_bytes_per_param(s.optimizer, p.state_bytes, p.master_bytes)
        largest = max(head, shape.hidden_size * shape.intermediate_size)
        # Mixed precision steps with a fused kernel (DeepSpeed FusedAdam) on the fp32 master copy.
        optimizer = "adamw_fused" if p.master_bytes else s.optimizer
        parts.step_scratch = _step_scratch(optimizer, s.device, trainable, largest, p.state_bytes)
        head_trained = True
    parts.trainable = trainable
    a = _activation_setup(shape, s, adapter=adapter, full=not adapter, act_bytes=act_bytes)
    parts.activations, parts.loss_scratch, parts.layer_scratch = _activations(shape, s, a, head_trained=head_trained, sequences=sequences)
    return parts


def _frozen_copy(shape: ModelShape, s: TrainSetup) -> float:
    return shape.total_params * s.precision.weight_bytes


def _shard(parts: _ModelParts, s: TrainSetup, shape: ModelShape) -> None:
    """Per-device share under ZeRO-2 (gradients and optimizer states) or ZeRO-3/FSDP (weights too)."""
    n = s.num_gpus
    if n <= 1 or s.sharding == "none":
        return
    layer_weights = parts.weights / max(shape.num_layers, 1)
    parts.grads /= n
    parts.head_grads /= n
    parts.states /= n
    parts.step_scratch /= n
    if s.sharding == "zero3":
        parts.weights = parts.weights / n + 2 * layer_weights  # two layers gathered (prefetch)
        parts.quant_constants /= n


def estimate_memory(shape: ModelShape, setup: TrainSetup) -> MemoryEstimate:
    """Peak memory per device for one training step of `setup.mode` on a model of `shape`."""
    s = setup
    if s.mode not in MODES:
        raise ValueError(f"unknown mode {s.mode!r}; known: {', '.join(MODES)}")
    notes: list[str] = []
    extra: dict[str, float] = {}
    if s.mode in ("full", "lora", "qlora", "dora"):
        parts = _trained_model(shape, s, adapter=s.mode != "full", quantized=s.mode == "qlora", sequences=s.micro_batch)
    elif s.mode == "dpo":
        adapter, quantized = s.policy in ("lora", "qlora"), s.policy == "qlora"
        # Each example is a chosen and a rejected sequence, both through the policy.
        parts = _trained_model(shape, replace(s, mode=s.policy) if adapter else s, adapter=adapter,
                               quantized=quantized, sequences=2 * s.micro_batch)
        if adapter:
            notes.append("reference model: the base with the adapter disabled (no copy)")
        else:
            extra["reference_model"] = _frozen_copy(shape, s)
    else:  # ppo
        adapter, quantized = s.policy in ("lora", "qlora"), s.policy == "qlora"
        base = replace(s, mode=s.policy) if adapter else s
        parts = _trained_model(shape, base, adapter=adapter, quantized=quantized, sequences=s.micro_batch)
        value = _trained_model(shape, base, adapter=adapter, quantized=quantized, sequences=s.micro_batch)
        _shard(value, s, shape)
        extra["value_model"] = value.weights + value.grads + value.states + value.activations
        notes.append("value model trained alongside the policy (one forward for both, as TRL does); "
                     "the rollout's KV cache is freed before the training pass")
        extra["reward_model"] = _frozen_copy(shape, s)
        if adapter:
            notes.append("reference model: the base with the adapter disabled (no copy)")
        else:
            extra["reference_model"] = _frozen_copy(shape, s)
    _shard(parts, s, shape)
    if s.sharding == "zero3" and s.num_gpus > 1:
        extra = {k: v / s.num_gpus for k, v in extra.items()}
    return _peak(shape, s, parts, extra, notes)


def _peak(shape: ModelShape, s: TrainSetup, parts: _ModelParts, extra: dict[str, float], notes: list[str]) -> MemoryEstimate:
    static = {
        "weights": parts.weights,
        "quantization_constants": parts.quant_constants,
        "optimizer_states": parts.states,
        **extra,
    }
    phases = {
        "backward start (every activation saved, loss gradients allocated)": {
            "activations": parts.activations + parts.loss_scratch,
        },
        "first layer of the backward pass (activations saved, head gradients allocated)": {
            "gradients": parts.head_grads,
            "activations": parts.activations + parts.layer_scratch,
        },
        "optimizer step (all gradients, step scratch)": {
            "gradients": parts.grads,
            "optimizer_states": parts.step_scratch,
        },
    }
    best_phase, best, best_total = "", {}, -1.0
    for phase, alive in phases.items():
        merged = dict(static)
        for key, value in alive.items():
            merged[key] = merged.get(key, 0.0) + value
        total = sum(merged.values())
        if total > best_total:
            best_phase, best, best_total = phase, merged, total
    if s.device == "cuda":
        overhead = s.cuda_context_bytes + s.allocator_fraction * best_total
    else:
        overhead = s.cpu_runtime_bytes
    best["framework_overhead"] = overhead
    order = ["weights", "gradients", "optimizer_states", "activations", "quantization_constants",
             "reference_model", "reward_model", "value_model", "framework_overhead"]
    breakdown = {k: int(best.get(k, 0)) for k in order if k in best or k in ("gradients", "activations")}
    if s.optimizer == "paged_adamw_8bit":
        notes.append("optimizer states are paged: under memory pressure they move to CPU RAM instead of failing")
    if s.gradient_checkpointing:
        notes.append("gradient checkpointing: each layer keeps only its input and is recomputed in backward")
    return MemoryEstimate(
        mode=s.mode,
        peak_bytes=sum(breakdown.values()),
        breakdown=breakdown,
        peak_phase=best_phase,
        trainable_params=parts.trainable,
        setup=s,
        notes=notes,
    )
