"""Small builders for scheduler states: declared pools, waiting and running jobs."""

from __future__ import annotations

from tunewise.jobs.schedule_types import (
    ClusterState,
    Demand,
    Gpu,
    MigSlice,
    Node,
    Placement,
    Pool,
    Quota,
    RunningJob,
    SchedulerPolicy,
    Slot,
    WaitingJob,
)

CARD = 80.0  # GiB: round numbers keep the arithmetic in the tests readable


def pool(nodes: int = 1, gpus: int = 8, *, name: str = "p", mig: dict[int, list[tuple[str, float, float]]] | None = None,
         cpu_slots: int = 0, gpu_type: str = "h100-80gb") -> Pool:
    """`nodes` nodes of `gpus` cards; `mig` partitions card i of every node into (profile, GiB, compute) slices."""
    out = []
    for n in range(nodes):
        cards = []
        for i in range(gpus):
            slices = tuple(MigSlice(f"gpu{i}/mig{k}", profile, gib, compute)
                           for k, (profile, gib, compute) in enumerate((mig or {}).get(i, ())))
            cards.append(Gpu(i, gpu_type, CARD, slices))
        out.append(Node(f"n{n}", tuple(cards), cpu_slots))
    return Pool(name, tuple(out))


def demand(gpus: int = 1, gib: float = 40.0, *, nodes: int = 1, shareable: bool = False, hours: float | None = 1.0,
           cpu_slots: int = 0, gpu_type: str | None = None) -> Demand:
    return Demand(gpus=gpus, memory_gib_per_gpu=gib, nodes=nodes, shareable=shareable, cpu_slots=cpu_slots,
                  gpu_type=gpu_type, estimated_seconds=None if hours is None else hours * 3600)


def waiting(job_id: str, d: Demand, *, at: float = 0.0, priority: int = 0, team: str = "t", pool_name: str = "p",
            preempted_for: str | None = None) -> WaitingJob:
    return WaitingJob(job_id, team, pool_name, priority, at, d, preempted_for=preempted_for)


def whole(node: str, *cards: int) -> Placement:
    return Placement(tuple(Slot(node=node, gpu=c, memory_gib=CARD) for c in cards))


def share(node: str, card: int, gib: float) -> Placement:
    return Placement((Slot(node=node, gpu=card, memory_gib=gib),))


def running(job_id: str, d: Demand, placement: Placement, *, started: float = 0.0, priority: int = 0, team: str = "t",
            pool_name: str = "p", stopping: bool = False, preemptible: bool = True) -> RunningJob:
    return RunningJob(job_id, team, pool_name, priority, started, d, placement, preemptible, stopping)


def state(pools: Pool | tuple[Pool, ...], running_jobs=(), waiting_jobs=(), *, quotas: tuple[Quota, ...] = (),
          now: float = 0.0, **policy) -> ClusterState:
    pools = pools if isinstance(pools, tuple) else (pools,)
    return ClusterState(pools, tuple(running_jobs), tuple(waiting_jobs), quotas, now, SchedulerPolicy(**policy))


def fill(p: Pool, *, hours: float = 10.0, priority: int = 0, team: str = "t", skip: int = 0) -> list[RunningJob]:
    """A whole-GPU job on every card of the pool but the first `skip` of each node."""
    out = []
    for node in p.nodes:
        for card in node.gpus[skip:]:
            out.append(running(f"busy-{node.name}-{card.index}", demand(hours=hours), whole(node.name, card.index),
                               priority=priority, team=team, pool_name=p.name))
    return out
