"""What tunewise asks of a Ray cluster, in one place: how a job's processes become Ray Train workers
(`RayOptions`, `scaling_plan`), and whether the cluster's nodes can ever hold that gang (`gang_problem`).

Ray's own API is touched here and in scale/ray_train.py only. The control plane reads the cluster
through the GCS client (the node table, a few milliseconds, no driver registered): the server stays
a plain process and never joins the cluster itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tunewise.errors import SpecError

ADDRESS_ENV = "TUNEWISE_RAY_ADDRESS"  # set: `tunewise train` runs the job's processes as Ray Train workers
OPTIONS_ENV = "TUNEWISE_RAY_OPTIONS"  # JSON of the RayOptions fields other than the address
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_ADDRESS = re.compile(r"\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}")


@dataclass(frozen=True)
class RayOptions:
    """How jobs run on one Ray cluster (the `executor.options` of `executor: ray`)."""

    address: str  # the head's GCS address, host:port (what `ray start --head --port` printed)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # 0: CPU workers; below 1: a share of a GPU (jobs that share a card)
    max_failures: int = 2  # worker-group restarts (each resumes from the last complete checkpoint)
    multi_node_strategy: str = "PACK"  # placement group strategy of jobs with nnodes > 1
    storage_path: str | None = None  # Ray Train's run state; default <run dir>/.launch/ray (shared storage)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ADDRESS.fullmatch(self.address or ""):
            raise SpecError(f"executor.options.address: {self.address!r} is not a Ray address",
                            hint="host:port of the head node's GCS, e.g. 10.0.0.5:6379 (ray start --head --port)")
        for name, kind in (("cpus_per_worker", (int, float)), ("gpus_per_worker", (int, float)), ("max_failures", int)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                what = "an integer" if kind is int else "a number"
                raise SpecError(f"executor.options.{name}: {value!r} is not {what}")
        if self.cpus_per_worker <= 0:
            raise SpecError("executor.options.cpus_per_worker: must be above 0")
        if self.gpus_per_worker < 0:
            raise SpecError("executor.options.gpus_per_worker: must not be negative")
        if self.max_failures < -1:
            raise SpecError("executor.options.max_failures: -1 (no limit) or more")
        if self.multi_node_strategy not in STRATEGIES:
            raise SpecError(f"executor.options.multi_node_strategy: {self.multi_node_strategy!r} is not one of "
                            f"{', '.join(STRATEGIES)}")

    def to_env(self) -> dict[str, str]:
        options = {k: v for k, v in asdict(self).items() if k != "address"}
        return {ADDRESS_ENV: self.address, OPTIONS_ENV: json.dumps(options)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RayOptions | None:
        """The options the Ray executor (or a user) put in the environment; None when Ray is not asked for."""
        environ = os.environ if environ is None else environ
        address = environ.get(ADDRESS_ENV, "").strip()
        if not address:
            return None
        try:
            options = json.loads(environ.get(OPTIONS_ENV) or "{}")
        except json.JSONDecodeError as err:
            raise SpecError(f"{OPTIONS_ENV}: not valid JSON ({err})") from None
        known = {f.name for f in fields(cls)} - {"address"}
        if not isinstance(options, dict) or set(options) - known:
            raise SpecError(f"{OPTIONS_ENV}: expected a JSON object of {', '.join(sorted(known))}")
        return cls(address=address, **options)


def scaling_plan(resources: Any, options: RayOptions) -> dict[str, Any]:
    """Ray Train's ScalingConfig arguments for a job's `resources`: one worker per training process.

    A job on one node is one STRICT_PACK placement group (its workers share a machine, as torchrun's
    do); across nodes, `multi_node_strategy`. Either way the placement group is reserved whole or
    not at all, so a gang never starts half-placed.
    """
    per_worker: dict[str, float] = {"CPU": options.cpus_per_worker}
    if options.gpus_per_worker:
        per_worker["GPU"] = options.gpus_per_worker
    return {"num_workers": resources.world_size, "use_gpu": options.gpus_per_worker > 0,
            "resources_per_worker": per_worker,
            "placement_strategy": "STRICT_PACK" if resources.nnodes == 1 else options.multi_node_strategy}


def gpu_share(memory_gib: float, gpu_memory_gib: float | None) -> float:
    """The fraction of a GPU a job reserving `memory_gib` of it takes (Ray counts GPUs, not memory);
    a whole GPU when the card's memory is not known."""
    if not gpu_memory_gib or memory_gib <= 0 or memory_gib >= gpu_memory_gib:
        return 1.0
    return min(1.0, math.ceil(memory_gib / gpu_memory_gib * 100) / 100)


def gang_problem(nodes: list[dict[str, float]], plan: dict[str, Any]) -> str | None:
    """Why the cluster's alive `nodes` (their total resources) can never hold the job's workers
    together, or None when they can (busy or not: Ray queues a placement group until it fits)."""
    want = plan["resources_per_worker"]
    workers = plan["num_workers"]
    per_node = [_workers_on(node, want) for node in nodes]
    shape = f"{workers} worker{'s' if workers != 1 else ''} x {_describe(want)}"
    strategy = plan["placement_strategy"]
    if strategy == "STRICT_PACK":
        if max(per_node, default=0) >= workers:
            return None
        return (f"needs {shape} on one node; the largest of the Ray cluster's {len(nodes)} node(s) holds "
                f"{max(per_node, default=0)}")
    if strategy == "STRICT_SPREAD":
        if sum(1 for n in per_node if n >= 1) >= workers:
            return None
        return f"needs {shape}, each on its own node; the Ray cluster has {sum(1 for n in per_node if n)} such node(s)"
    if sum(per_node) >= workers:
        return None
    return f"needs {shape}; the Ray cluster's {len(nodes)} node(s) hold {sum(per_node)} in all"


def _workers_on(node: dict[str, float], want: dict[str, float]) -> int:
    return min((int(node.get(key, 0.0) / amount + 1e-9) for key, amount in want.items() if amount > 0), default=0)


def _describe(want: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {key}" for key, amount in want.items())


def alive_nodes(address: str, timeout_s: float = 5.0) -> list[dict[str, float]]:
    """The total resources of each alive node of the cluster at `address` (its GCS node table)."""
    import socket

    from ray._raylet import GcsClient  # the client `ray status` uses; no driver joins the cluster

    host, _, port = address.rpartition(":")
    # The client waits about 40 s for a GCS that is not there; a refused connection says so at once.
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
        pass
    client = GcsClient(address=address)
    table = client.get_all_node_info(timeout=timeout_s)
    alive = 0  # GcsNodeInfo.GcsNodeState.ALIVE
    return [dict(info.resources_total) for info in table.values() if info.state == alive]
