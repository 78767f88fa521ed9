"""The scheduler's contract: what it is given and what it decides. Plain frozen data, no I/O.

The server builds a `ClusterState` from the store, calls `schedule(state)` and carries out the
`Decisions`: it starts admitted jobs on their placement, asks preempted jobs to checkpoint and stop
(then requeues them), and stores each waiting job's position and reason. The simulation benchmark
builds the same state on a simulated clock. Units: memory in GiB, times in seconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

WaitReason = Literal["quota", "memory", "gang", "priority", "capacity"]


@dataclass(frozen=True)
class Gpu:
    """One physical GPU of a node; `mig_slices` are the MIG instances it is partitioned into."""

    index: int
    type: str  # hardware catalogue key, e.g. "h100-80gb"
    memory_gib: float
    mig_slices: tuple[MigSlice, ...] = ()


@dataclass(frozen=True)
class MigSlice:
    name: str  # "gpu3/mig1", unique within the node
    profile: str  # "3g.40gb"
    memory_gib: float
    compute_fraction: float = 1.0  # share of the card's compute (3g: 3/7); scales a job's estimated time


@dataclass(frozen=True)
class Node:
    name: str
    gpus: tuple[Gpu, ...] = ()
    cpu_slots: int = 0  # CPU-only jobs (the tiny-model and CPU-training case)


@dataclass(frozen=True)
class Pool:
    name: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Quota:
    """A team's nominal share of a pool; idle nominal quota can be borrowed by others, then reclaimed."""

    team: str
    gpus: float | None = None  # whole-GPU equivalents (a 20 GiB share of an 80 GiB GPU counts 0.25)
    gpu_memory_gib: float | None = None
    can_borrow: bool = True
    can_lend: bool = True


@dataclass(frozen=True)
class Demand:
    """What one job needs, from the planner's estimate for its spec.

    `gpus == 0` is a CPU job needing `cpu_slots`. A job with `gpus > 1` (or `nodes > 1`) is a gang:
    all `gpus` devices are reserved together or none. `shareable` jobs may take a fraction of one GPU
    (`memory_gib_per_gpu` of it) or a MIG slice at least that large.
    """

    gpus: int = 0
    memory_gib_per_gpu: float = 0.0
    nodes: int = 1
    gpu_type: str | None = None  # None: any type with enough memory
    shareable: bool = False
    cpu_slots: int = 0
    estimated_seconds: float | None = None  # for backfill: how long the job should hold what it takes


@dataclass(frozen=True)
class Slot:
    """One reserved device share: a whole GPU, part of one, a MIG slice, or CPU slots on a node."""

    node: str
    gpu: int | None = None  # None: CPU slots
    mig_slice: str | None = None
    memory_gib: float = 0.0
    cpu_slots: int = 0


@dataclass(frozen=True)
class Placement:
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class WaitingJob:
    id: str
    team: str
    pool: str
    priority: int  # higher runs first; classes come from the server config
    submitted_at: float
    demand: Demand
    preemptible: bool = True
    preempted_for: str | None = None  # requeued after being stopped for this job: it queues behind it while it waits


@dataclass(frozen=True)
class RunningJob:
    id: str
    team: str
    pool: str
    priority: int
    started_at: float
    demand: Demand
    placement: Placement
    preemptible: bool = True
    stopping: bool = False  # already asked to checkpoint and stop: its resources free up soon


@dataclass(frozen=True)
class SchedulerPolicy:
    """The policy's switches and constants; the defaults are the full policy (docs/scheduling.md).

    The simulation benchmark turns features off to compare against simpler queues on one trace.
    """

    priorities: bool = True  # False: one FIFO queue by submission time, priorities ignored
    aging_seconds: float | None = 3600.0  # a waiting job ranks one priority class higher per this wait; None: off
    priority_classes: tuple[int, ...] = ()  # the class ladder aging climbs; () = the priorities present in the state
    share_gpus: bool = True  # False: a shareable job still takes a whole GPU (or a MIG slice)
    backfill: bool = True  # False: nothing starts ahead of a blocked job of its pool (strict order)
    preemption: bool = True
    preemption_grace_seconds: float = 300.0  # no preemption when the blocked job should start within this anyway
    estimate_depth: int = 32  # waiting jobs per pool that get an estimated start (0: only the first in line)


@dataclass(frozen=True)
class ClusterState:
    pools: tuple[Pool, ...]
    running: tuple[RunningJob, ...]
    waiting: tuple[WaitingJob, ...]
    quotas: tuple[Quota, ...] = ()
    now: float = 0.0
    policy: SchedulerPolicy = field(default_factory=SchedulerPolicy)


@dataclass(frozen=True)
class Admit:
    job_id: str
    placement: Placement
    borrowed: bool = False  # admitted on another team's idle quota: first to be reclaimed


@dataclass(frozen=True)
class Preempt:
    job_id: str
    for_job: str
    reason: str  # "priority" or "quota reclaim"
    detail: str = ""  # a sentence for the job's events: for whom, and why this job


@dataclass(frozen=True)
class Wait:
    job_id: str
    position: int  # 1-based position in its pool's queue
    reason: WaitReason
    detail: str  # plain words: "needs 2 GPUs with 40 GiB each, 1 free", "team quota 4 GPUs in use of 4"
    estimated_start: float | None = None


@dataclass(frozen=True)
class Decisions:
    admit: tuple[Admit, ...] = ()
    preempt: tuple[Preempt, ...] = ()
    wait: tuple[Wait, ...] = field(default_factory=tuple)
