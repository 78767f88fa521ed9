"""The resource-aware scheduler: `schedule(state) -> decisions`, a pure function of the cluster state.

The policy in plain words is in docs/scheduling.md. The pieces:
  ordering.py    priority classes, FIFO within a class, aging
  placement.py   fitting a demand onto whole GPUs, GPU shares, MIG slices, CPU slots (gangs all or nothing)
  quotas.py      team quotas, borrowing idle quota
  backfill.py    the first blocked job's reservation, and what may start around it
  preemption.py  whom the first blocked job may stop (priority, quota reclaim), the fewest that suffice
  admission.py   one pass over the queue that puts these together
  estimates.py   estimated start times, by running the same policy forward on estimated ends

No I/O, no threads, no clock: the time is `state.now`, so the server, the simulation benchmark
(bench/scheduler_sim.py) and the tests all drive the same code and get the same answers.
"""

from __future__ import annotations

from tunewise.jobs.admission import decide
from tunewise.jobs.estimates import with_estimates
from tunewise.jobs.schedule_types import ClusterState, Decisions


def schedule(state: ClusterState) -> Decisions:
    """Decide what starts, what is preempted, and why every other job waits.

    Args:
        state: the pools, running and waiting jobs, team quotas, the time (`now`, seconds) and the policy.

    Returns admits (each with its placement; `borrowed` when it runs on another team's idle quota),
    preemptions (jobs to checkpoint, stop and requeue, each naming the job it makes room for) and a
    wait for every other waiting job: its 1-based position in its pool's queue, the reason
    (quota, memory, gang, priority or capacity), a sentence saying what it needs and what holds it,
    and, for the first `policy.estimate_depth` jobs of each pool, an estimated start time.
    """
    decisions = decide(state)
    if state.policy.estimate_depth > 0:
        decisions = with_estimates(state, decisions)
    return decisions
