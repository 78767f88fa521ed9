"""The Ray executor (`executor: ray`): each job attempt trains as Ray Train workers on a Ray cluster.

    executor:
      kind: ray
      options:
        address: 10.0.0.5:6379        # the head's GCS address (ray start --head --port=6379)
        cpus_per_worker: 4
        gpu_memory_gib: 80            # the cluster's GPU memory: a job sharing a card takes that share of a GPU
        max_failures: 2               # worker-group restarts, each from the last complete checkpoint
        multi_node_strategy: PACK     # jobs on several nodes (one-node jobs are STRICT_PACK)

Why a driver process per job, started like a local job: the attempt is `tunewise train` with
TUNEWISE_RAY_ADDRESS set (scale/ray_train.py), in its own session on the server's machine. It
connects to the cluster as the job's Ray driver and runs the TorchTrainer. So the server never
joins the cluster itself (no Ray state, threads or signal handlers in the API process), needs no
dashboard (Ray's job-submission API does), and every existing guarantee of the local executor
holds unchanged: the handle is a pid with its start time, so a restarted server finds the job
again; stop is SIGTERM (the driver passes it to the workers, which checkpoint together and stop);
cancel kills the driver's session, and Ray ends the workers a dead driver owned; the log file
gets the driver's output, into which Ray forwards every worker's. The run directory, where rank 0
writes status.json, metrics.jsonl and checkpoints, must be storage the cluster's nodes share.

Before starting, the executor checks that the cluster's alive nodes can ever hold the job's gang;
when they cannot, `start` raises WaitForCapacity and the job stays queued with that reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from tunewise.jobs.executors.base import Handle, Launch, Poll, WaitForCapacity
from tunewise.jobs.executors.local import LocalExecutor
from tunewise.jobs.schedule_types import Placement
from tunewise.scale.ray_cluster import RayOptions, alive_nodes, gang_problem, gpu_share, scaling_plan


class RayExecutor:
    name = "ray"

    def __init__(self, address: str, *, cpus_per_worker: float = 1.0, gpu_memory_gib: float | None = None,
                 max_failures: int = 2, multi_node_strategy: str = "PACK", storage_path: str | None = None,
                 python: str | None = None):
        self.options = RayOptions(address=address, cpus_per_worker=cpus_per_worker, max_failures=max_failures,
                                  multi_node_strategy=multi_node_strategy, storage_path=storage_path)
        self.gpu_memory_gib = gpu_memory_gib
        self.drivers = LocalExecutor(python=python)  # each attempt's driver is a local process

    def start(self, launch: Launch) -> Handle:
        options = dataclasses.replace(self.options, gpus_per_worker=self._gpus_per_worker(launch.placement))
        plan = scaling_plan(_resources(launch), options)
        try:
            nodes = alive_nodes(options.address)
        except Exception as err:  # a cluster being restarted: the job waits for it rather than failing
            raise WaitForCapacity(f"the Ray cluster at {options.address} does not answer "
                                  f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
        problem = gang_problem(nodes, plan)
        if problem:
            raise WaitForCapacity(f"the Ray cluster at {options.address} cannot hold this job: {problem}")
        handle = self.drivers.start(dataclasses.replace(launch, env={**launch.env, **options.to_env()}))
        return {**handle, "executor": self.name, "address": options.address, "workers": plan["num_workers"]}

    def poll(self, handle: Handle) -> Poll:
        return self.drivers.poll(handle)

    def stop(self, handle: Handle) -> None:
        self.drivers.stop(handle)  # SIGTERM: the driver writes the stop file the workers watch

    def cancel(self, handle: Handle) -> None:
        self.drivers.cancel(handle)  # the driver's session killed: Ray ends the workers it owned

    def logs(self, handle: Handle, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        return self.drivers.logs(handle, offset, limit)

    def _gpus_per_worker(self, placement: Placement) -> float:
        """0 for a CPU job; a share of a GPU for a job the scheduler put on part of a card; else 1."""
        gpus = [slot for slot in placement.slots if slot.gpu is not None]
        if not gpus:
            return 0.0
        if len(gpus) == 1 and not gpus[0].mig_slice:
            return gpu_share(gpus[0].memory_gib, self.gpu_memory_gib)
        return 1.0


def _resources(launch: Launch) -> Any:
    """The `resources` of the spec the attempt trains (a missing section: one process)."""
    from tunewise.scale.resources import ResourcesSpec

    raw = yaml.safe_load(launch.spec_path.read_text()) or {}
    return ResourcesSpec.model_validate(raw.get("resources") or {})


def make(**options: Any) -> RayExecutor:
    """The executor from the server config's `executor.options` (each option named when it is wrong)."""
    import inspect

    from tunewise.errors import SpecError

    known = [name for name in inspect.signature(RayExecutor).parameters if name != "python"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SpecError(f"executor.options.{unknown[0]}: not an option of the Ray executor",
                        hint=f"options: {', '.join(known)}")
    if "address" not in options:
        raise SpecError("executor.options.address: the Ray executor needs the cluster's address",
                        hint="e.g. executor: {kind: ray, options: {address: 10.0.0.5:6379}}")
    return RayExecutor(**options)
