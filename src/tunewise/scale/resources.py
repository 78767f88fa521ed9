"""The job spec's `resources:` section: how many processes train, on how many machines, sharded how.

It says how a job runs, not what it computes, so it is left out of the spec's content hash: the
same run can resume on a different number of processes (docs/scale-out.md).
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# `none` and `ddp` replicate the model (data parallel); `zero2` shards gradients and optimizer
# states, `zero3` and `fsdp` the parameters too. The planner speaks of none/zero2/zero3.
Sharding = Literal["auto", "none", "ddp", "fsdp", "zero2", "zero3"]
_ENDPOINT = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")
# Where launchers and operators put this machine's index: torchrun, Kubeflow's PyTorchJob/TrainJob
# (PET_*), and an indexed Kubernetes Job or JobSet.
NODE_RANK_VARIABLES = ("NODE_RANK", "PET_NODE_RANK", "JOB_COMPLETION_INDEX")


class ResourcesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    nproc_per_node: int = Field(1, ge=1, le=1024, description="Training processes on each machine: one per GPU "
                                "(on CPU they share the cores). Above 1, `tunewise train` launches them with torchrun.")
    nnodes: int = Field(1, ge=1, le=4096, description="Machines the job spans; each runs the same `tunewise train` "
                        "command with its own node_rank.")
    node_rank: int | None = Field(None, ge=0, description="This machine's index, 0 to nnodes-1. Default: NODE_RANK, "
                                  "PET_NODE_RANK or JOB_COMPLETION_INDEX from the environment, else 0.")
    rdzv_endpoint: str | None = Field(None, description="host:port where the machines meet (on node 0). Default: "
                                      "MASTER_ADDR:MASTER_PORT from the environment; on one machine a free local port.")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="Collectives: auto is nccl on CUDA, gloo on CPU.")
    sharding: Sharding = Field("auto", description="auto: the planner's choice (none -> DDP for adapters; full "
                               "fine-tuning always shards). ddp/none: replicate; zero2: shard gradients and optimizer "
                               "states; zero3/fsdp: shard parameters too (FSDP2, or DeepSpeed with engine: deepspeed).")
    engine: Literal["torch", "deepspeed"] = Field("torch", description="torch: DDP and FSDP2. deepspeed: ZeRO-2/3 "
                                                  "from a generated config (CUDA and the deepspeed extra).")
    collective_timeout_s: float = Field(600.0, gt=0, le=86400, description="A collective that waits longer than this "
                                        "fails the job, so a dead process on another machine cannot hang it.")

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and not _ENDPOINT.match(value):
            raise ValueError(f"{value!r} is not host:port (e.g. trainer-0.trainer:29500)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ResourcesSpec:
        if self.node_rank is not None and self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes ({self.nnodes})")
        if self.engine == "deepspeed" and self.sharding in ("none", "ddp", "fsdp"):
            raise ValueError(f"sharding {self.sharding!r} is not a DeepSpeed stage: use zero2, zero3 or auto "
                             "with engine: deepspeed")
        return self

    @property
    def world_size(self) -> int:
        """Training processes in all."""
        return self.nproc_per_node * self.nnodes

    def resolved_node_rank(self, environ: dict[str, str] | None = None) -> int:
        """node_rank, else the first index an operator set in the environment, else 0."""
        if self.node_rank is not None:
            return self.node_rank
        environ = os.environ if environ is None else environ
        for name in NODE_RANK_VARIABLES:
            raw = environ.get(name, "").strip()
            if raw.isdigit():
                return int(raw)
        return 0

    def resolved_endpoint(self, environ: dict[str, str] | None = None) -> str | None:
        """rdzv_endpoint, else MASTER_ADDR:MASTER_PORT (or Kubeflow's PET_ names) from the environment."""
        if self.rdzv_endpoint:
            return self.rdzv_endpoint
        environ = os.environ if environ is None else environ
        for addr, port in (("MASTER_ADDR", "MASTER_PORT"), ("PET_MASTER_ADDR", "PET_MASTER_PORT")):
            if environ.get(addr) and environ.get(port):
                return f"{environ[addr]}:{environ[port]}"
        return None
