"""Where a job runs on a cluster, from the plan: nodes, processes per node, the GPU (or MIG slice)
each pod asks for, and the sharding the planner expects.

The planner (tunewise.plan) finds the smallest number of GPUs of a type that holds the job and how
it shards there; the same numbers become the Kubernetes resources and the job's `resources`
section, so what is scheduled is what the plan said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunewise.errors import SpecError

GPU_RESOURCE = "nvidia.com/gpu"
PLAN_TOKENS = 1_000_000  # the dataset size does not change the placement; a round figure keeps files unread


@dataclass(frozen=True)
class Placement:
    nnodes: int
    nproc_per_node: int
    accelerator: str | None  # the extended resource each pod asks for: nvidia.com/gpu or nvidia.com/mig-<profile>
    accelerators_per_node: int
    sharding: str  # the planner's: none | zero2 | zero3
    scheduling: str  # the planner's short label: "1 pod", "MIG 1g.10gb", "gang, 2 nodes", ...
    notes: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node


def place(spec: Any, *, gpu: str, params: float | None = None) -> Placement:
    """The placement of `spec` on GPUs of catalog type `gpu` ("cpu" for CPU-only nodes).

    Args:
        spec: the JobSpec. Its `resources`, when given, are kept (with a note where the plan disagrees);
            otherwise the plan's GPU count decides them.
        params: the base model's parameter count, to plan a model that is not on this machine.
    """
    from tunewise.plan.hardware import load_catalog

    device = load_catalog().device(gpu)
    resources = spec.resources
    explicit = "resources" in spec.model_fields_set
    if device.is_cpu:
        return Placement(resources.nnodes, resources.nproc_per_node, None, 0, "none", "cpu nodes")
    result = _plan_mode(spec, gpu=gpu, gpus=resources.world_size if explicit else 1, params=params)
    needed = result.gpus_needed
    if explicit:
        placement = Placement(resources.nnodes, resources.nproc_per_node, GPU_RESOURCE, resources.nproc_per_node,
                              result.sharding, result.scheduling_short)
        if needed is None or needed > resources.world_size:
            want = "does not fit at any GPU count" if needed is None else f"needs {needed} x {gpu}"
            placement.notes.append(f"the plan says {result.mode} {want}; the spec asks for {resources.world_size}")
        return placement
    if needed is None:
        raise SpecError(f"the plan finds no number of {gpu} GPUs that holds this job ({result.mode})",
                        hint="shorten data.max_length, lower train.micro_batch_size or pick a larger --gpu")
    if needed == 1:
        mig = result.mig_slice
        return Placement(1, 1, f"nvidia.com/mig-{mig}" if mig else GPU_RESOURCE, 1, "none", result.scheduling_short)
    per_node = min(needed, device.gpus_per_node)
    nnodes = -(-needed // per_node)
    sharded = _plan_mode(spec, gpu=gpu, gpus=per_node * nnodes, params=params)
    return Placement(nnodes, per_node, GPU_RESOURCE, per_node, sharded.sharding, sharded.scheduling_short,
                     [f"the plan needs {needed} x {gpu} for {result.mode}: {nnodes} node(s) x {per_node}"])


def with_placement(spec: Any, placement: Placement) -> Any:
    """`spec` with its resources set to the placement (what every pod's `tunewise train` reads)."""
    resources = replace_resources(spec.resources, nnodes=placement.nnodes, nproc_per_node=placement.nproc_per_node)
    return spec.model_copy(update={"resources": resources})


def replace_resources(resources: Any, **changes: Any) -> Any:
    return type(resources).model_validate({**resources.model_dump(), **changes})


def _plan_mode(spec: Any, *, gpu: str, gpus: int, params: float | None) -> Any:
    """The planner's result for this job's method on `gpus` GPUs of type `gpu` (the request the
    scheduler sizes jobs with, jobs/demand.py)."""
    from tunewise.errors import ModelError
    from tunewise.jobs.demand import plan_request
    from tunewise.plan.fit import planner_mode
    from tunewise.plan.planner import plan
    from tunewise.plan.request import PlanRequest

    request = plan_request(spec, gpu, tokens=PLAN_TOKENS).model_dump()
    request.update(gpus=gpus, gradient_checkpointing="on" if spec.train.gradient_checkpointing else "auto")
    if params:
        request.update(model=None, params=params)
    try:
        report = plan(PlanRequest(**request))
    except ModelError as err:
        raise SpecError(f"cannot plan base_model {spec.base_model!r} here: {err.message}",
                        hint="give its parameter count with --params (e.g. 8e9)") from None
    return report.mode(planner_mode(spec.method.name, spec.method_config())[0])
