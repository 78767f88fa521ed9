"""The training processes of one job: who this one is, and the few collectives the loop needs.

A single-process run uses `SINGLE`, whose collectives return their input, so the supervised loop
and the checkpoint manager have one code path. Under torchrun, `join_process_group()` reads the
launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and joins the group with a
timeout on every collective: a process that died on another machine fails the job instead of
hanging it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

from tunewise.errors import TunewiseError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the job's training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: str = "cpu"  # where reduced tensors live (nccl reduces CUDA tensors only)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes what a job writes once: metrics, status, reports, the artifact, manifests."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0; None elsewhere."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64, so token counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any_of(self, *wanted: bool) -> list[bool]:
        """Decisions every rank must take together (a checkpoint by the clock, a stop): each is true on
        all ranks when it is true on any, so no rank enters a collective the others skip."""
        return [total > 0 for total in self.sum(*(1.0 if w else 0.0 for w in wanted))]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _object_device(self) -> Any:
        import torch

        return torch.device(self.device) if self.device.startswith("cuda") else None


SINGLE = Ranks()


def join_process_group(backend: str, device: str, timeout_s: float) -> Ranks:
    """Join the job's process group (torchrun's environment says where); returns this process's Ranks.

    Args:
        backend: auto (nccl on CUDA, gloo on CPU), gloo or nccl.
        device: the training device policy's device (cpu or cuda).
        timeout_s: how long any collective may wait before it raises.
    """
    import torch
    import torch.distributed as dist

    env = os.environ
    ranks = Ranks(rank=int(env["RANK"]), world=int(env["WORLD_SIZE"]), local_rank=int(env["LOCAL_RANK"]),
                  local_world=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])), device=device)
    if backend == "auto":
        backend = "nccl" if device == "cuda" else "gloo"
    if backend == "nccl" and device != "cuda":
        raise TunewiseError("resources.backend: nccl needs CUDA devices", hint="use gloo (or auto) on CPU")
    if device == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        ranks = Ranks(ranks.rank, ranks.world, ranks.local_rank, ranks.local_world, f"cuda:{ranks.local_rank}")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return ranks


def current_ranks() -> Ranks:
    """This process's Ranks in the process group it already joined; SINGLE when it joined none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if dist.get_backend() == "nccl" else "cpu"
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                 local_world=int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())), device=device)


def leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
