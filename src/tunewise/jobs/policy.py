"""The scheduling policy the server runs: pools, quotas and priority classes from the config, the
scheduler's decisions, and each job's demand from the planner.

`load_policy(section)` wires the scheduler package (`tunewise.jobs.pool_config`, `scheduler`,
`demand`) to the server config's `scheduling:` section. Anything with the same members can stand in
for it (tests drive the server with a small one; the simulation benchmark drives the scheduler
itself).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from tunewise.jobs.schedule_types import ClusterState, Decisions, Demand, Pool, Quota


class SchedulingPolicy(Protocol):
    pools: tuple[Pool, ...]
    quotas: tuple[Quota, ...]
    priority_classes: dict[str, int]
    default_priority_class: str

    def schedule(self, state: ClusterState) -> Decisions:
        """The pure scheduler: admit, preempt, or keep waiting with a reason."""

    def demand(self, spec: dict[str, Any], pool: str, *, tokens: int | None = None,
               examples: int | None = None) -> Demand:
        """What a job (its resolved spec) needs from `pool`, from the planner's estimate."""


class ConfiguredPolicy:
    """The scheduler package driven by the server config's `scheduling:` section."""

    def __init__(self, section: dict[str, Any]):
        from tunewise.jobs.pool_config import load_scheduling_config

        self.setup = load_scheduling_config(section, source="scheduling")
        self.pools = self.setup.pools
        self.quotas = self.setup.quotas
        self.priority_classes = dict(self.setup.priority_classes)
        self.default_priority_class = self.setup.default_priority_class

    def schedule(self, state: ClusterState) -> Decisions:
        from tunewise.jobs.scheduler import schedule

        return schedule(dataclasses.replace(state, policy=self.setup.policy))

    def demand(self, spec: dict[str, Any], pool: str, *, tokens: int | None = None,
               examples: int | None = None) -> Demand:
        from tunewise.jobs.demand import pool_demand
        from tunewise.spec import JobSpec

        return pool_demand(JobSpec.model_validate(spec), self.setup.pool(pool), tokens=tokens or None,
                           examples=examples or None)


def load_policy(section: dict[str, Any]) -> SchedulingPolicy:
    return ConfiguredPolicy(section)
