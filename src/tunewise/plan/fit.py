"""Will this training job fit? The check the training loop runs before spending anything."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunewise.plan.architecture import (
    ModelShape,
    shape_from_config,
    shape_from_model_dir,
)
from tunewise.plan.hardware import GIB, load_catalog
from tunewise.plan.memory import (
    PRECISIONS,
    LoraSetup,
    Precision,
    TrainSetup,
    estimate_memory,
)

MAX_MICRO_BATCH = 4096
SFT_MODES = ("full", "lora", "qlora", "dora")
# Registered methods that are not one of the planner's modes, sized as the nearest mode. A reward
# model runs each pair through the model as DPO does; with full weights the estimate also counts a
# reference copy it does not hold, so it errs high.
_PREFERENCE = {"dpo": "dpo", "orpo": "dpo", "kto": "dpo", "simpo": "dpo", "reward": "dpo",
               "ppo": "ppo", "grpo": "ppo", "rloo": "ppo"}


@dataclass
class FitDecision:
    fits: bool
    peak_bytes: int
    breakdown: dict[str, int]
    available_bytes: int
    max_micro_batch: int  # largest micro-batch that fits (0 when even 1 does not)
    modes_that_fit: list[str]
    message: str


def _shape(model: Any) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, (str, Path)):
        return shape_from_model_dir(model)
    if isinstance(model, dict):
        return shape_from_config(model)
    if hasattr(model, "to_dict"):  # a transformers PretrainedConfig
        return shape_from_config(model.to_dict(), source=type(model).__name__)
    raise TypeError(f"check_fit: expected a model directory, config dict or PretrainedConfig, got {type(model).__name__}")


def _precision(dtype_bytes: int) -> Precision:
    return PRECISIONS["fp32"] if dtype_bytes >= 4 else PRECISIONS["bf16"]


def _lora_options(cfg: Any) -> Any:
    """The LoRA options of a method config: the config itself (lora, dora, qlora), or the `lora`
    sub-config of an alignment method when its `adapter` is lora or qlora; None when nothing adapts."""
    if cfg is None:
        return None
    if hasattr(cfg, "adapter"):
        return cfg.lora if cfg.adapter in ("lora", "qlora") else None
    return cfg if hasattr(cfg, "r") else None


def _mode_and_lora(method_name: str, cfg: Any) -> tuple[str, LoraSetup, dict[str, Any]]:
    """The planner mode for a registered method, and its LoRA options where it has them."""
    extra: dict[str, Any] = {}
    lora = LoraSetup()
    options = _lora_options(cfg)
    if options is not None:
        lora = LoraSetup(r=int(options.r), targets=getattr(options, "target_modules", "all-linear") or "all-linear",
                         dropout=float(getattr(options, "dropout", 0.0)))
    if method_name in SFT_MODES:
        if method_name == "qlora":
            extra["double_quant"] = bool(getattr(cfg, "double_quant", True))
        if method_name == "full":
            extra["freeze_embeddings"] = bool(getattr(cfg, "freeze_embeddings", False))
        return method_name, lora, extra
    if method_name in _PREFERENCE:
        # The policy trains fully, as a LoRA adapter, or as one on a 4-bit base (adapter: qlora).
        extra["policy"] = "full" if options is None else getattr(cfg, "adapter", "lora")
        return _PREFERENCE[method_name], lora, extra
    # ia3, prefix, prompt and other small adapters: a frozen base with few trained parameters,
    # sized as LoRA of rank 1 without dropout (their activations are those of the frozen base).
    return "lora", LoraSetup(r=1, dropout=0.0), extra


def planner_mode(method_name: str, method_cfg: Any) -> tuple[str, str | None]:
    """The planner's mode for a registered method (full, lora, qlora, dora, dpo or ppo), and for an
    alignment method how its policy trains (full, lora or qlora; None for supervised methods)."""
    mode, _lora, extra = _mode_and_lora(method_name, method_cfg)
    return mode, extra.get("policy")


def _available(device: str) -> int:
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fit(
    model_dir_or_config: Any,
    method_name: str,
    method_cfg: Any,
    *,
    seq_len: int,
    micro_batch: int,
    gradient_checkpointing: bool,
    device: str,
    dtype_bytes: int,
    available_bytes: int | None = None,
    num_gpus: int = 1,
    sharding: str = "none",
) -> FitDecision:
    """Estimate a training job's peak memory and compare it with what the device has free.

    Args:
        model_dir_or_config: model directory (with config.json), config dict, PretrainedConfig or ModelShape.
        method_name: registered method (full, lora, qlora, dora, dpo, ...); method_cfg its config object.
        seq_len, micro_batch: tokens per sequence and sequences per forward pass.
        gradient_checkpointing: whether layers recompute their activations in backward.
        device: "cpu" or "cuda"; dtype_bytes: 4 for fp32 weights, 2 for bf16/fp16.
        available_bytes: memory to fit in; default CUDA free memory, or psutil's available RAM on CPU.
        num_gpus, sharding: data-parallel processes and what they shard (none, zero2, zero3): the
            estimate is per process.
    """
    shape = _shape(model_dir_or_config)
    available = int(available_bytes) if available_bytes is not None else _available(device)
    mode, lora, extra = _mode_and_lora(method_name, method_cfg)
    overhead = load_catalog().overhead
    setup = TrainSetup(
        mode=mode, seq_len=seq_len, micro_batch=micro_batch, precision=_precision(dtype_bytes),
        device="cuda" if device.startswith("cuda") else "cpu", gradient_checkpointing=gradient_checkpointing,
        lora=lora, cuda_context_bytes=int(float(overhead.get("cuda_context_gib", 0.8)) * GIB),
        allocator_fraction=float(overhead.get("cuda_allocator_fraction", 0.05)),
        cpu_runtime_bytes=int(float(overhead.get("cpu_runtime_mib", 80)) * 2**20), num_gpus=num_gpus,
        sharding=sharding if num_gpus > 1 else "none", **extra,
    )
    est = estimate_memory(shape, setup)
    headroom = _cpu_headroom(overhead, mode, extra) if setup.device == "cpu" else 0.0
    usable = int(available / (1 + headroom))
    fits = est.peak_bytes <= usable
    max_mb = _max_micro_batch(shape, setup, usable)
    others = [m for m in SFT_MODES if estimate_memory(shape, replace(setup, mode=m, policy="full")).peak_bytes <= usable]
    return FitDecision(
        fits=fits, peak_bytes=est.peak_bytes, breakdown=est.breakdown, available_bytes=available,
        max_micro_batch=max_mb, modes_that_fit=others,
        message=_message(fits, est.peak_bytes, available, method_name, setup, max_mb, others, est.breakdown,
                         _checkpointed_peak(shape, setup), headroom),
    )


def check_job_fit(spec: Any, base_dir: Any, policy: Any, *, micro_batch: int | None = None, num_gpus: int = 1,
                  sharding: str = "none", sharers: int = 1) -> FitDecision:
    """check_fit for a job spec on the device policy it trains with.

    Args:
        spec: the JobSpec (method, data.max_length, train.micro_batch_size, gradient_checkpointing,
            memory_limit_gb: the GiB to plan against instead of what the device has free).
        base_dir: the base model's directory; policy: the DevicePolicy (device and dtype).
        micro_batch: sequences per forward pass, if not the spec's.
        num_gpus, sharding: the job's processes and what they shard (see check_fit).
        sharers: processes sharing this memory (the processes of a CPU job on one machine); each plans
            against its share.
    """
    limit_gib = spec.train.memory_limit_gb
    available = int(limit_gib * GIB) if limit_gib else _available(policy.device)
    return check_fit(base_dir, spec.method.name, spec.method_config(), seq_len=spec.data.max_length,
                     micro_batch=micro_batch or spec.train.micro_batch_size,
                     gradient_checkpointing=spec.train.gradient_checkpointing, device=policy.device,
                     dtype_bytes=policy.dtype.itemsize, available_bytes=available // max(sharers, 1),
                     num_gpus=num_gpus, sharding=sharding)


def planned_sharding(spec: Any, base_dir: Any, policy: Any, *, num_gpus: int, sharers: int = 1) -> str:
    """The planner's sharding for a job on `num_gpus` processes: none, zero2 or zero3, the first (least
    communication) whose estimated peak fits; zero3 when none does."""
    for sharding in ("none", "zero2", "zero3"):
        if check_job_fit(spec, base_dir, policy, num_gpus=num_gpus, sharding=sharding, sharers=sharers).fits:
            return sharding
    return "zero3"


def _cpu_headroom(overhead: dict[str, Any], mode: str, extra: dict[str, Any]) -> float:
    """The share a CPU job's estimate must fit with to spare. The estimate counts tensors; the process
    also keeps heap pages glibc does not hand back after a free (BENCHMARKS.md: training RSS 1-12%
    above the estimate for full, LoRA and DoRA). A 4-bit base needs more: bitsandbytes dequantizes a
    weight for every matmul, and loading quantizes from a full-precision copy (43% above, 59% at load)."""
    four_bit = mode == "qlora" or extra.get("policy") == "qlora"
    if four_bit:
        return float(overhead.get("cpu_heap_headroom_4bit", 0.6))
    return float(overhead.get("cpu_heap_headroom", 0.3))


def _max_micro_batch(shape: ModelShape, setup: TrainSetup, available: int) -> int:
    def fits(mb: int) -> bool:
        return estimate_memory(shape, replace(setup, micro_batch=mb)).peak_bytes <= available

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= MAX_MICRO_BATCH and fits(high):
        low, high = high, high * 2
    high = min(high, MAX_MICRO_BATCH + 1)
    while high - low > 1:  # fits(low) and not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _checkpointed_peak(shape: ModelShape, setup: TrainSetup) -> int | None:
    if setup.gradient_checkpointing:
        return None
    return estimate_memory(shape, replace(setup, gradient_checkpointing=True)).peak_bytes


def _message(fits, peak, available, method, setup, max_mb, others, breakdown, ckpt_peak, headroom) -> str:
    gib = lambda b: f"{b / GIB:.2f} GiB"
    where = f"{method}, seq {setup.seq_len} x micro-batch {setup.micro_batch} on {setup.device}"
    if headroom:
        where += f"; {headroom:.0%} headroom for CPU heap slack"
    if fits:
        return f"fits: estimated peak {gib(peak)} of {gib(available)} available ({where})"
    largest = max(breakdown, key=breakdown.get)
    tips = []
    if max_mb >= 1:
        tips.append(f"micro_batch <= {max_mb} fits (raise gradient_accumulation to keep the batch)")
    if ckpt_peak is not None and ckpt_peak * (1 + headroom) <= available:
        tips.append(f"train.gradient_checkpointing=true fits ({gib(ckpt_peak)})")
    smaller = [m for m in others if m != method]
    if smaller:
        tips.append(f"methods that fit as configured: {', '.join(smaller)}")
    advice = "; ".join(tips) if tips else "no method fits this device at this sequence length; use a larger device"
    return (f"does not fit: estimated peak {gib(peak)} but only {gib(available)} available ({where}); "
            f"largest part: {largest} {gib(breakdown[largest])}. Try: {advice}")
