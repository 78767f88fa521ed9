"""The plan: memory, GPUs, time and cost for every mode, then a recommendation.

`plan()` is the stage function (PlanRequest in, PlanReport out); `tunewise plan` renders its report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.plan import calibration, costs
from tunewise.plan.architecture import (
    ModelShape,
    shape_from_model_dir,
    shape_from_params,
)
from tunewise.plan.dataset import DatasetSize, from_numbers, measure_file
from tunewise.plan.hardware import (
    GIB,
    Catalog,
    Device,
    load_catalog,
    this_machine_memory_bytes,
)
from tunewise.plan.memory import (
    MODES,
    PRECISIONS,
    LoraSetup,
    MemoryEstimate,
    TrainSetup,
    adapter_params,
    estimate_memory,
)
from tunewise.plan.mode_result import ModeResult
from tunewise.plan.recommend import Recommendation, recommend
from tunewise.plan.request import PlanRequest
from tunewise.plan.throughput import flops_per_token, tokens_per_second

MAX_GPUS = 4096
NO_DATASET = "time and cost need it (--data FILE, --tokens N or --examples N)"


class PlanRefused(TunewiseError):
    """No adaptation mode fits the hardware and budget given."""


@dataclass
class PlanReport:
    request: PlanRequest
    shape: ModelShape
    model_label: str
    device: Device
    device_memory_bytes: int
    dataset: DatasetSize | None  # None: no size given; the plan covers memory and placement only
    precision: str
    modes: list[ModeResult]
    recommendation: Recommendation
    extra_costs: dict[str, Any]
    catalog_source: str
    assumptions: list[str]

    def mode(self, name: str) -> ModeResult:
        return next(m for m in self.modes if m.mode == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": {
                "name": self.model_label,
                "params": self.shape.total_params,
                "param_counts": self.shape.param_counts(),
                "shape": self.shape.describe(),
                "source": self.shape.source,
                "assumed": self.shape.assumed,
            },
            "hardware": {
                "gpu": self.device.id,
                "name": self.device.name,
                "gpus": 1 if self.device.is_cpu else self.request.gpus,
                "memory_gb_per_device": round(self.device_memory_bytes / GIB, 2),
                "price_per_hour_usd": [self.device.price.low, self.device.price.high],
                "catalog": self.catalog_source,
            },
            "dataset": None if self.dataset is None else {
                "examples": self.dataset.examples, "tokens": self.dataset.tokens, "source": self.dataset.source},
            "setup": {
                "seq_len": self.request.seq_len,
                "micro_batch": self.request.micro_batch,
                "precision": self.precision,
                "optimizer": self.request.optimizer,
                "epochs": self.request.epochs,
                "lora_r": self.request.lora_r,
                "lora_targets": self.request.lora_targets,
            },
            "modes": [m.to_json() for m in self.modes],
            "recommendation": self.recommendation.to_json(),
            "extra_costs": self.extra_costs,
            "assumptions": self.assumptions,
        }


# --- inputs --------------------------------------------------------------------------------------


def _resolve_shape(req: PlanRequest) -> tuple[ModelShape, str, Path | None]:
    arch = dict(layers=req.layers, hidden=req.hidden, vocab=req.vocab, intermediate=req.intermediate,
                heads=req.heads, kv_heads=req.kv_heads)
    if req.params:
        return shape_from_params(req.params, **arch), f"{req.params:.3g} parameters", None
    from tunewise.models import resolve_base_model
    from tunewise.spec import BUNDLED_MODEL

    name = req.model or BUNDLED_MODEL
    model_dir = resolve_base_model(name)
    return shape_from_model_dir(model_dir), name, model_dir


def _dataset(req: PlanRequest, model_dir: Path | None) -> DatasetSize | None:
    """The dataset's size, or None when none is given: memory does not depend on it, time and cost do."""
    if req.data:
        tokenizer = None
        if model_dir is not None:
            from tunewise.models.load import load_tokenizer

            tokenizer = load_tokenizer(model_dir)
        return measure_file(req.data, tokenizer)
    if req.tokens is None and req.examples is None:
        return None
    return from_numbers(tokens=req.tokens, examples=req.examples, mean_tokens=req.mean_example_tokens)


def _base_setup(req: PlanRequest, device: Device, catalog: Catalog) -> TrainSetup:
    if req.precision == "auto":
        precision = "fp32" if device.is_cpu else "bf16"
    else:
        precision = req.precision
    overhead = catalog.overhead
    return TrainSetup(
        mode="full",
        seq_len=req.seq_len,
        micro_batch=req.micro_batch,
        precision=PRECISIONS[precision],
        device="cpu" if device.is_cpu else "cuda",
        optimizer=req.optimizer,
        lora=LoraSetup(r=req.lora_r, targets=req.lora_target_list(), dropout=req.lora_dropout),
        cuda_context_bytes=int(float(overhead.get("cuda_context_gib", 0.8)) * GIB),
        allocator_fraction=float(overhead.get("cuda_allocator_fraction", 0.05)),
        cpu_runtime_bytes=int(float(overhead.get("cpu_runtime_mib", 80)) * 2**20),
    )


# --- per mode ------------------------------------------------------------------------------------


def _configs(n: int, checkpointing: str):
    """Configurations to try on n devices, cheapest in time first: no sharding (data parallel),
    ZeRO-2, ZeRO-3/FSDP; each without gradient checkpointing before with it."""
    shardings = ["none"] if n == 1 else ["none", "zero2", "zero3"]
    ckpts = {"auto": [False, True], "on": [True], "off": [False]}[checkpointing]
    for sharding in shardings:
        for ckpt in ckpts:
            yield sharding, ckpt


def _fit_on(shape: ModelShape, base: TrainSetup, n: int, memory: int, checkpointing: str) -> MemoryEstimate | None:
    for sharding, ckpt in _configs(n, checkpointing):
        est = estimate_memory(shape, replace(base, num_gpus=n, sharding=sharding, gradient_checkpointing=ckpt))
        if est.peak_bytes <= memory:
            return est
    return None


def _gpu_counts(per_node: int):
    yield from range(1, per_node + 1)
    n = 2 * per_node
    while n <= MAX_GPUS:
        yield n
        n += per_node if n < 16 * per_node else 8 * per_node


def smallest_fit(shape, base, memory, checkpointing, device: Device) -> tuple[int | None, MemoryEstimate | None]:
    counts = [1] if device.is_cpu else _gpu_counts(device.gpus_per_node)
    for n in counts:
        est = _fit_on(shape, base, n, memory, checkpointing)
        if est is not None:
            return n, est
    return None, None


def _scheduling(mode: str, n: int | None, device: Device, est: MemoryEstimate | None) -> tuple[str, str, str | None]:
    """(description, short label, MIG slice) of how the job is scheduled."""
    if device.is_cpu:
        return "this machine", "this machine", None
    if n is None:
        return "does not fit at any GPU count at this micro-batch and sequence length", "-", None
    if n == 1:
        for profile in sorted(device.mig, key=lambda p: (p.memory_gib, p.compute_fraction)):
            if profile.compute_fraction < 1 and est is not None and est.peak_bytes <= profile.memory_gib * GIB:
                return (f"single pod; small enough to share a GPU through a MIG slice {profile.name} "
                        f"({profile.compute_fraction:.0%} of the compute, the rest of the card free)",
                        f"MIG {profile.name}", profile.name)
        return "single pod, one whole GPU", "1 pod", None
    nodes = -(-n // device.gpus_per_node)
    if nodes == 1:
        if mode == "ppo":
            return (f"single node, {n} GPUs, gang-scheduled: policy, value and reward models start together",
                    "gang, 1 node", None)
        return f"single node, {n} whole GPUs (topology hints recommended)", "1 node", None
    return (f"gang-scheduled multi-node: {n} GPUs over {nodes} nodes, all workers start atomically",
            f"gang, {nodes} nodes", None)


def _policies(mode: str, req: PlanRequest) -> list[str | None]:
    if mode not in ("dpo", "ppo"):
        return [None]
    if req.alignment_policy != "auto":
        return [req.alignment_policy]
    if req.variants > 3:
        return ["lora"]  # many variants: adapters, one base
    return ["full", "lora"]


def _evaluate(mode: str, shape: ModelShape, req: PlanRequest, device: Device, memory: int, catalog: Catalog,
              base: TrainSetup, dataset: DatasetSize | None, calib_model: str, calib_device: str) -> ModeResult:
    available = 1 if device.is_cpu else req.gpus
    chosen = None
    for policy in _policies(mode, req):
        setup = replace(base, mode=mode, policy=policy or "full")
        needed, est = smallest_fit(shape, setup, memory, req.gradient_checkpointing, device)
        chosen = (policy, setup, needed, est)
        if needed is not None and needed <= available:
            break
    policy, setup, needed, est = chosen
    fits = needed is not None and needed <= available
    used = available if fits else (needed or available)
    if fits:
        est = _fit_on(shape, setup, used, memory, req.gradient_checkpointing) or est
    if est is None:  # shown at its smallest: all available devices, fully sharded, checkpointed
        shard = "zero3" if used > 1 else "none"
        est = estimate_memory(shape, replace(setup, num_gpus=used, sharding=shard, gradient_checkpointing=True))
    single = estimate_memory(shape, replace(est.setup, num_gpus=1, sharding="none"))
    lean = estimate_memory(shape, replace(est.setup, micro_batch=1, gradient_checkpointing=True))
    scheduling, short, mig = _scheduling(mode, needed, device, est)
    tps, source = _throughput(shape, est.setup, device, catalog, used, calib_model, calib_device)
    hours, cost, cost_range = _time_and_cost(dataset, tps, req.epochs * used, device)
    notes = []
    if est.setup.num_gpus > 1 and est.setup.sharding != "none":
        notes.append(f"{est.setup.sharding} sharding across {est.setup.num_gpus} GPUs")
    if policy:
        notes.append(f"policy trained as {'a LoRA adapter' if policy == 'lora' else 'a full model'}")
    return ModeResult(
        mode=mode, memory=est, lean_memory=lean, single_device_peak_bytes=single.peak_bytes, fits=fits,
        gpus_needed=needed, gpus_used=used, sharding=est.setup.sharding,
        gradient_checkpointing=est.setup.gradient_checkpointing, tokens_per_s=tps, throughput_source=source,
        hours_per_epoch=hours, cost_usd=cost, cost_range_usd=cost_range, scheduling=scheduling,
        scheduling_short=short, mig_slice=mig, policy=policy,
        within_budget=req.budget_usd is None or cost is None or cost <= req.budget_usd, notes=notes,
    )


def _time_and_cost(dataset: DatasetSize | None, tokens_per_s: float, device_epochs: float,
                   device: Device) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """(hours per epoch, cost at the mid price, (low, high) cost) of the whole run; Nones without a dataset size.

    `device_epochs`: epochs x devices used, the device-hours each hour of an epoch costs.
    """
    if dataset is None:
        return None, None, None
    hours = dataset.tokens / tokens_per_s / 3600 if tokens_per_s > 0 else float("inf")
    device_hours = hours * device_epochs
    price = device.price
    return hours, device_hours * price.mid, (device_hours * price.low, device_hours * price.high)


def _throughput(shape, setup: TrainSetup, device: Device, catalog: Catalog, devices: int, calib_model: str,
                calib_device: str) -> tuple[float, str]:
    entry = calibration.find(calib_model, calib_device, setup.mode)
    if entry is not None:
        return (entry.tokens_per_s * devices,
                f"measured {entry.tokens_per_s:.1f} tokens/s per device on {entry.measured_at} "
                f"(seq {entry.seq_len} x micro-batch {entry.micro_batch}; {calibration.calibration_path()})")
    flops = flops_per_token(shape, setup)
    eff = catalog.efficiency_for(device, setup.mode)
    tps = tokens_per_second(flops, peak_tflops=device.peak_tflops, efficiency=eff, devices=devices)
    return tps, f"estimated: {flops.total / 1e9:.2f} GFLOP/token ({flops.detail}) at {eff:.0%} of {device.peak_tflops:g} TFLOP/s"


# --- the stage -----------------------------------------------------------------------------------


def plan(request: PlanRequest | None = None, **options: Any) -> PlanReport:
    """Estimate memory, GPUs, time and cost of every adaptation mode and recommend one.

    Args:
        request: a PlanRequest; or give its fields as keyword arguments (model=, params=, data=,
            tokens=, examples=, gpu=, gpus=, seq_len=, micro_batch=, objective=, variants=,
            budget_usd=, epochs=, tokenizer_change=, reward_signal=, ...).

    Returns a PlanReport; `report.to_json()` is what `tunewise plan --json` prints. A plan where
    nothing fits still returns, with `recommendation.mode` None and the refusal in its reasons.
    """
    req = request or PlanRequest(**options)
    catalog = load_catalog(req.hardware)
    device = catalog.device(req.gpu)
    memory = this_machine_memory_bytes() if device.is_cpu else device.memory_bytes
    shape, label, model_dir = _resolve_shape(req)
    dataset = _dataset(req, model_dir)
    base = _base_setup(req, device, catalog)
    calib_model = label
    calib_device = calibration.device_key("cpu") if device.is_cpu else device.id
    results = [_evaluate(m, shape, req, device, memory, catalog, base, dataset, calib_model, calib_device) for m in MODES]
    sizes = costs.artifact_sizes(shape, adapter_params(shape, replace(base, mode="lora")))
    rec = recommend(results, req, dataset, sizes)
    return PlanReport(
        request=req, shape=shape, model_label=label, device=device, device_memory_bytes=memory, dataset=dataset,
        precision=base.precision.name, modes=results, recommendation=rec,
        extra_costs=_extra_costs(req, results, rec, sizes, catalog, device), catalog_source=catalog.source,
        assumptions=_assumptions(req, shape, device, base, dataset),
    )


def _extra_costs(req, results, rec, sizes, catalog, device) -> dict[str, Any]:
    chosen = next((r for r in results if r.mode == rec.mode), None)
    out: dict[str, Any] = {"serving": costs.serving_storage(req.variants, sizes)}
    if chosen is not None:
        adapter = chosen.mode in ("lora", "qlora", "dora") or chosen.policy == "lora"
        out["checkpoint_storage"] = costs.checkpoint_storage(
            adapter=adapter, sizes=sizes, trainable_params=chosen.memory.trainable_params, kept=req.checkpoints_kept,
            months=req.storage_months, usd_per_gb_month=float(catalog.costs.get("storage_usd_per_gb_month", 0.023)))
        if chosen.cost_usd is not None:  # spot prices the run; without a dataset size there is no run to price
            out["spot"] = costs.spot_offer(chosen.cost_usd, catalog, checkpointing=req.checkpointing)
        run_gpu_hours = None if chosen.hours_per_epoch is None else chosen.hours_per_epoch * req.epochs * chosen.gpus_used
        hours = req.gpu_hours_per_week or run_gpu_hours
        if hours is not None:
            out["cloud_vs_owned"] = costs.cloud_vs_owned(device, catalog, gpu_hours_per_week=hours)
    return out


def _assumptions(req: PlanRequest, shape: ModelShape, device: Device, base: TrainSetup,
                 dataset: DatasetSize | None) -> list[str]:
    out = [f"model shape: {shape.describe()} ({shape.source})"]
    if dataset is None:
        out.append(f"no dataset size: memory and placement are planned at micro-batch {req.micro_batch} x "
                   f"{req.seq_len} tokens per sequence, which do not depend on it; {NO_DATASET}")
    if shape.assumed:
        out.append("architecture assumed from the parameter count; give --layers --hidden --vocab --intermediate "
                   "--heads --kv-heads to replace any of it")
    out.append(f"precision {base.precision.name}: weights {base.precision.weight_bytes} B, gradients "
               f"{base.precision.grad_bytes} B, each AdamW moment {base.precision.state_bytes} B per parameter"
               + (", fp32 master copy" if base.precision.master_bytes else "")
               + "; LoRA adapters and their states in fp32 (peft's default)")
    out.append("attention: a memory-efficient SDPA kernel (no seq x seq matrix kept); data packed, no padding")
    if device.is_cpu:
        out.append("cpu: memory is what psutil reports available now")
    else:
        out.append(f"GB means GiB (2**30 bytes), the unit GPU memory is quoted in; {device.name}: "
                   f"{device.memory_gib:g} GiB usable")
    return out
