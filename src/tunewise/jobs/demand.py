"""A job's demand on a pool, from the planner's estimate for its spec.

The planner (tunewise.plan) sizes the job on one GPU type: the fewest GPUs it fits on, the peak
memory per GPU in that configuration, whether it is small enough for a MIG slice, and the hours
it takes. That becomes the scheduler's `Demand`:

  - gpus: the planner's smallest GPU count; nodes: that count over the GPUs one node holds;
  - memory_gib_per_gpu: the planner's peak per device plus `MEMORY_HEADROOM` (the reservation a
    shared card or MIG slice must hold);
  - shareable: one GPU, small enough for a MIG slice of that type, and not PPO (policy, reference,
    value and reward models run together and are not shared, per the scheduling guidance the
    platform follows);
  - estimated_seconds: hours per epoch times epochs (or fewer, with train.max_steps).

A CPU job needs one CPU slot. A spec with stages needs the most any stage needs, for the sum of
their times. Approximations: an alignment policy trained as QLoRA is sized as LoRA (it errs high).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.jobs.ledger import PoolIndex
from tunewise.jobs.placement import place
from tunewise.jobs.schedule_types import Demand, Pool
from tunewise.plan.hardware import GIB, Device
from tunewise.plan.planner import ModeResult, plan
from tunewise.plan.request import PlanRequest

MEMORY_HEADROOM = 0.10  # on top of the planner's peak: estimates err, and a shared card has no slack to give


class DemandError(TunewiseError):
    """A job cannot run on the pool or GPU type asked for (says why and what would)."""


def demand_from_mode(mode: ModeResult, device: Device, *, epochs: float = 1.0, gpus_per_node: int | None = None,
                     memory_headroom: float = MEMORY_HEADROOM, seconds: float | None = None) -> Demand:
    """The Demand for one planner mode result on `device` (`seconds` overrides the planner's time)."""
    if device.is_cpu:
        hours = mode.hours_per_epoch * epochs
        return Demand(gpus=0, cpu_slots=1, estimated_seconds=_finite(seconds if seconds is not None else hours * 3600))
    if mode.gpus_needed is None:
        raise DemandError(f"{mode.mode} does not fit on {device.name} at any GPU count ({mode.scheduling})",
                          hint="shorten data.max_length, lower train.micro_batch_size, turn on "
                               "train.gradient_checkpointing, or use an adapter method")
    gpus = mode.gpus_needed
    nodes = math.ceil(gpus / (gpus_per_node or device.gpus_per_node))
    memory = min(device.memory_gib, mode.memory.peak_bytes / GIB * (1 + memory_headroom))
    shareable = gpus == 1 and mode.mig_slice is not None and mode.mode != "ppo"
    if seconds is None:
        seconds = mode.hours_per_epoch * epochs * 3600
    return Demand(gpus=gpus, memory_gib_per_gpu=round(memory, 3), nodes=nodes, gpu_type=device.id,
                  shareable=shareable, estimated_seconds=_finite(seconds))


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def plan_request(spec: Any, gpu_type: str, *, tokens: int | None = None, examples: int | None = None) -> PlanRequest:
    """The planner's request for a JobSpec on one GPU type (or "cpu"), on one device: the planner
    then reports the fewest devices the job fits on."""
    from tunewise.plan.fit import planner_mode

    cfg = spec.method_config()
    _mode, policy = planner_mode(spec.method.name, cfg)
    lora = getattr(cfg, "lora", cfg)
    targets = getattr(lora, "target_modules", "all-linear") or "all-linear"
    precision = {"fp16": "bf16"}.get(spec.train.precision, spec.train.precision)
    return PlanRequest(
        model=spec.base_model, data=None if tokens or examples else spec.data.train, tokens=tokens, examples=examples,
        gpu=gpu_type, gpus=1, seq_len=spec.data.max_length, micro_batch=spec.train.micro_batch_size,
        gradient_checkpointing="on" if spec.train.gradient_checkpointing else "off", precision=precision,
        lora_r=int(getattr(lora, "r", 16)), lora_targets=targets if isinstance(targets, str) else ",".join(targets),
        lora_dropout=float(getattr(lora, "dropout", 0.0)),
        alignment_policy="auto" if policy is None else ("full" if policy == "full" else "lora"),
        epochs=spec.train.epochs,
    )


def job_demand(spec: Any, gpu_type: str, *, tokens: int | None = None, examples: int | None = None,
               gpus_per_node: int | None = None, memory_headroom: float = MEMORY_HEADROOM) -> Demand:
    """The Demand of a JobSpec on one GPU type from the hardware catalogue ("cpu": a CPU job).

    Args:
        spec: the JobSpec (its data file is measured unless `tokens` or `examples` are given).
        gpu_type: catalogue key, e.g. "h100-80gb", or "cpu".
        gpus_per_node: GPUs of that type one node of the pool holds (default: the catalogue's).
    """
    if spec.stages:
        from tunewise.spec import JobSpec

        parts = [job_demand(JobSpec.model_validate(stage), gpu_type, tokens=tokens, examples=examples,
                            gpus_per_node=gpus_per_node, memory_headroom=memory_headroom)
                 for stage in spec.stage_specs(job_name=spec.name or "job")]
        return _combine(parts)
    from tunewise.plan.fit import planner_mode

    report = plan(plan_request(spec, gpu_type, tokens=tokens, examples=examples))
    mode_name, _policy = planner_mode(spec.method.name, spec.method_config())
    mode = report.mode(mode_name)
    return demand_from_mode(mode, report.device, epochs=spec.train.epochs, gpus_per_node=gpus_per_node,
                            memory_headroom=memory_headroom, seconds=_step_limited_seconds(spec, mode, report.dataset.tokens))


def _step_limited_seconds(spec: Any, mode: ModeResult, tokens: int) -> float | None:
    """With train.max_steps, the time of those steps when it is less than the epochs'."""
    epochs_s = mode.hours_per_epoch * spec.train.epochs * 3600
    if not spec.train.max_steps or mode.tokens_per_s <= 0:
        return epochs_s
    devices = max(1, mode.gpus_used)
    step_tokens = spec.train.micro_batch_size * spec.train.gradient_accumulation * spec.data.max_length * devices
    return min(epochs_s, spec.train.max_steps * min(step_tokens, tokens) / mode.tokens_per_s)


def _combine(parts: list[Demand]) -> Demand:
    seconds = [p.estimated_seconds for p in parts]
    gpus = max(p.gpus for p in parts)
    return replace(parts[0], gpus=gpus, nodes=max(p.nodes for p in parts),
                   memory_gib_per_gpu=max(p.memory_gib_per_gpu for p in parts),
                   shareable=gpus == 1 and all(p.shareable for p in parts),
                   cpu_slots=max(p.cpu_slots for p in parts),
                   estimated_seconds=None if None in seconds else sum(seconds))


def pool_demand(spec: Any, pool: Pool, *, tokens: int | None = None, examples: int | None = None,
                memory_headroom: float = MEMORY_HEADROOM) -> Demand:
    """The Demand of a JobSpec on a pool: on its GPU type that needs the fewest GPUs (the first
    declared on a tie), or a CPU slot when the spec trains on CPU or the pool has no GPUs.

    Raises DemandError when the pool can never hold the job.
    """
    index = PoolIndex(pool)
    per_node: dict[str, int] = {}
    for node in pool.nodes:
        counts: dict[str, int] = {}
        for gpu in node.gpus:
            counts[gpu.type] = counts.get(gpu.type, 0) + 1
        for gpu_type, n in counts.items():
            per_node[gpu_type] = max(per_node.get(gpu_type, 0), n)
    if spec.train.device == "cpu" or not per_node:
        if not any(node.cpu_slots for node in pool.nodes):
            raise DemandError(f"pool {pool.name!r} has no CPU slots for a CPU job" if per_node else
                              f"pool {pool.name!r} has no GPUs and no CPU slots")
        return job_demand(spec, "cpu", tokens=tokens, examples=examples)
    if tokens is None and examples is None and not spec.stages:
        tokens, examples = _measure(spec)
    fitting = []
    problems = []
    for gpu_type, most in per_node.items():
        try:
            demand = job_demand(spec, gpu_type, tokens=tokens, examples=examples, gpus_per_node=most,
                                memory_headroom=memory_headroom)
        except DemandError as err:
            problems.append(err.message)
            continue
        if place(demand, index.empty_ledger()) is not None:
            fitting.append(demand)
        else:
            problems.append(f"on {gpu_type} it needs {demand.gpus} GPUs over {demand.nodes} node(s)")
    if not fitting:
        raise DemandError(f"the job never fits pool {pool.name!r}: " + "; ".join(problems))
    return min(fitting, key=lambda d: d.gpus)


def _measure(spec: Any) -> tuple[int, int]:
    """Tokens and rows of the training file, counted once for every GPU type tried."""
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer
    from tunewise.plan.dataset import measure_file

    size = measure_file(spec.data.train, load_tokenizer(resolve_base_model(spec.base_model)))
    return size.tokens, size.examples
