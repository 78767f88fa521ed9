"""The scheduling policy the server runs: pools, quotas and priority classes from the config, the
scheduler's decisions, and each job's demand from the planner.

`load_policy(config)` wires the scheduler package (`tunewise.jobs.scheduler`, `pool_config`,
`demand`); anything with the same three members (pools, quotas, `schedule`, `demand`) can stand in
for it, e.g. in the simulation benchmark.
"""

from __future__ import annotations

from typing import Any, Protocol

from tunewise.jobs.schedule_types import ClusterState, Decisions, Demand, Pool, Quota


class SchedulingPolicy(Protocol):
    pools: tuple[Pool, ...]
    quotas: tuple[Quota, ...]
    priority_classes: dict[str, int]
    default_priority_class: str

    def schedule(self, state: ClusterState) -> Decisions:
        """The pure scheduler: admit, preempt, or keep waiting with a reason."""

    def demand(self, spec: dict[str, Any], pool: str) -> Demand:
        """What a job (its resolved spec) needs from `pool`, from the planner's estimate."""


class ConfiguredPolicy:
    """The scheduler package driven by the server config's `scheduler:` section."""

    def __init__(self, config: dict[str, Any]):
        from tunewise.jobs import pool_config

        self.config = pool_config.load_cluster_config(config)
        self.pools = self.config.pools
        self.quotas = self.config.quotas
        self.priority_classes = dict(self.config.priority_classes)
        self.default_priority_class = self.config.default_priority_class

    def schedule(self, state: ClusterState) -> Decisions:
        from tunewise.jobs.scheduler import schedule

        return schedule(state)

    def demand(self, spec: dict[str, Any], pool: str) -> Demand:
        from tunewise.jobs.demand import demand_for

        return demand_for(spec, next(p for p in self.pools if p.name == pool))


def load_policy(config: dict[str, Any]) -> SchedulingPolicy:
    return ConfiguredPolicy(config)
