"""The scheduling section of the server config: pools of nodes, priority classes, team quotas, policy.

    scheduling:
      pools:
        - name: gpu
          nodes:
            - name: node            # count: 4 makes node-1 .. node-4
              count: 4
              gpus:
                - {type: h100-80gb, count: 6}
                - {type: h100-80gb, count: 2, mig: [3g.40gb, 4g.40gb]}   # each of these 2 cards, partitioned
        - name: cpu
          nodes: [{name: local, cpu_slots: 2}]
      priority_classes: {low: 0, normal: 100, high: 1000}
      default_priority_class: normal
      quotas:
        - {team: research, gpus: 16}
        - {team: product, gpu_memory_gib: 640, can_lend: false}
      aging_hours: 1

GPU types and MIG profiles are names from the hardware catalogue (tunewise/plan/hardware.yaml, or
$TUNEWISE_HOME/hardware.yaml). Every field has a default: one pool `default` with one CPU slot.
`SchedulingConfig.build()` gives the frozen pools, quotas and policy the scheduler takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from tunewise.errors import TunewiseError
from tunewise.jobs.schedule_types import (
    ClusterState,
    Gpu,
    MigSlice,
    Node,
    Pool,
    Quota,
    RunningJob,
    SchedulerPolicy,
    WaitingJob,
)
from tunewise.plan.hardware import Catalog, load_catalog

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MIG_TOLERANCE = 0.01  # catalogue fractions are rounded (7 x 0.143 = 1.001)


class SchedulingConfigError(TunewiseError):
    """The scheduling section of the server config is invalid (names the field)."""


def _catalog(info: ValidationInfo) -> Catalog:
    """The catalogue the validation was given in its context, else the default one (read once per validation)."""
    if not isinstance(info.context, dict):
        return load_catalog()
    if "catalog" not in info.context:
        info.context["catalog"] = load_catalog()
    return info.context["catalog"]


def _name(value: str, what: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a {what} name: use letters, digits, '.', '_' or '-' (at most 63)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuGroup(_Strict):
    type: str = Field(description="GPU type from the hardware catalogue, e.g. h100-80gb.")
    count: int = Field(1, ge=1, le=64, description="Cards of this type on the node.")
    memory_gib: float | None = Field(None, gt=0, description="Memory per card in GiB; default: the catalogue's.")
    mig: list[str] | None = Field(None, description="MIG profiles each of these cards is partitioned into, "
                                  "e.g. [3g.40gb, 4g.40gb]; absent: whole cards.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        catalog = _catalog(info)
        key = value.lower()
        gpus = sorted(k for k, d in catalog.devices.items() if not d.is_cpu)
        if key not in gpus:
            raise ValueError(f"unknown GPU type {value!r} (known: {', '.join(gpus)}; see {catalog.source})")
        return key

    @model_validator(mode="after")
    def _partition_fits(self, info: ValidationInfo) -> GpuGroup:
        if self.mig is None:
            return self
        if not self.mig:
            raise ValueError("mig: give at least one profile, or leave mig out for whole cards")
        device = _catalog(info).devices[self.type]
        profiles = {p.name: p for p in device.mig}
        unknown = [p for p in self.mig if p not in profiles]
        if unknown:
            known = ", ".join(profiles) or "none: this type has no MIG"
            raise ValueError(f"mig: unknown profile {unknown[0]!r} for {self.type} (known: {known})")
        compute = sum(profiles[p].compute_fraction for p in self.mig)
        memory = sum(profiles[p].memory_gib for p in self.mig)
        parts = " + ".join(self.mig)
        if compute > 1 + MIG_TOLERANCE:
            raise ValueError(f"mig: {parts} takes {compute:.0%} of a card's compute; a {self.type} has 100%")
        if memory > device.memory_gib * (1 + MIG_TOLERANCE):
            raise ValueError(f"mig: {parts} takes {memory:.1f} GiB; a {self.type} has {device.memory_gib:g} GiB")
        return self


class NodeConfig(_Strict):
    name: str = Field(description="Node name (with count > 1, the prefix of name-1, name-2, ...).")
    count: int = Field(1, ge=1, le=1024, description="Identical nodes declared by this entry.")
    gpus: list[GpuGroup] = Field(default_factory=list, description="The node's GPUs, by group.")
    cpu_slots: int = Field(0, ge=0, le=1024, description="CPU-only jobs the node runs at once.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value, "node")

    @model_validator(mode="after")
    def _has_something(self) -> NodeConfig:
        if not self.gpus and not self.cpu_slots:
            raise ValueError("a node needs gpus or cpu_slots")
        return self

    def names(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(1, self.count + 1)]


class PoolConfig(_Strict):
    name: str = Field(description="Pool name; a job asks for a pool by this name.")
    nodes: list[NodeConfig] = Field(min_length=1, description="The pool's nodes.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value, "pool")

    @model_validator(mode="after")
    def _unique_nodes(self) -> PoolConfig:
        _first_duplicate([n for node in self.nodes for n in node.names()], "node")
        return self


class QuotaConfig(_Strict):
    team: str = Field(description="Team name.")
    gpus: float | None = Field(None, ge=0, description="Nominal whole-GPU equivalents (a 20 GiB share of an 80 GiB card is 0.25).")
    gpu_memory_gib: float | None = Field(None, ge=0, description="Nominal GPU memory in GiB.")
    can_borrow: bool = Field(True, description="May run past its quota on other teams' idle quota (reclaimable).")
    can_lend: bool = Field(True, description="Lets other teams borrow its idle quota.")

    @model_validator(mode="after")
    def _has_a_limit(self) -> QuotaConfig:
        if self.gpus is None and self.gpu_memory_gib is None:
            raise ValueError("a quota needs gpus or gpu_memory_gib")
        return self


def _default_pools() -> list[PoolConfig]:
    return [PoolConfig(name="default", nodes=[NodeConfig(name="local", cpu_slots=1)])]


class SchedulingConfig(_Strict):
    pools: list[PoolConfig] = Field(default_factory=_default_pools, min_length=1,
                                    description="Pools of nodes; default: one pool 'default' with one CPU slot.")
    priority_classes: dict[str, int] = Field(default_factory=lambda: {"low": 0, "normal": 100, "high": 1000},
                                             description="Priority classes by name; higher runs first.")
    default_priority_class: str = Field("normal", description="Class of a job that names none.")
    quotas: list[QuotaConfig] = Field(default_factory=list, description="Team quotas; none: no limits.")
    aging_hours: float | None = Field(1.0, gt=0, description="A waiting job ranks one class higher per this many "
                                      "hours waited; null: no aging.")
    gpu_sharing: bool = Field(True, description="Small jobs share a card through memory-sized reservations.")
    backfill: bool = Field(True, description="Later jobs may start around a blocked one when that cannot delay it.")
    preemption: bool = Field(True, description="Higher classes and quota reclaim may checkpoint-and-stop running jobs.")
    preemption_grace_minutes: float = Field(5.0, ge=0, description="No preemption for a job estimated to start "
                                            "within this many minutes anyway.")
    estimate_depth: int = Field(32, ge=0, le=1000, description="Waiting jobs per pool given an estimated start.")

    @model_validator(mode="after")
    def _consistent(self) -> SchedulingConfig:
        _first_duplicate([p.name for p in self.pools], "pool")
        _first_duplicate([q.team for q in self.quotas], "quota team")
        if not self.priority_classes:
            raise ValueError("priority_classes: give at least one class")
        for name in self.priority_classes:
            _name(name, "priority class")
        if self.default_priority_class not in self.priority_classes:
            raise ValueError(f"default_priority_class: {self.default_priority_class!r} is not one of the "
                             f"priority_classes ({', '.join(self.priority_classes)})")
        return self

    def build(self, catalog: Catalog | None = None) -> SchedulingSetup:
        """The frozen pools, quotas and policy the scheduler takes."""
        catalog = catalog or load_catalog()
        return SchedulingSetup(
            pools=tuple(_pool(p, catalog) for p in self.pools),
            quotas=tuple(Quota(q.team, q.gpus, q.gpu_memory_gib, q.can_borrow, q.can_lend) for q in self.quotas),
            policy=SchedulerPolicy(
                aging_seconds=self.aging_hours * 3600 if self.aging_hours else None,
                priority_classes=tuple(sorted(set(self.priority_classes.values()))),
                share_gpus=self.gpu_sharing, backfill=self.backfill, preemption=self.preemption,
                preemption_grace_seconds=self.preemption_grace_minutes * 60, estimate_depth=self.estimate_depth),
            priority_classes=tuple(self.priority_classes.items()),
            default_priority_class=self.default_priority_class,
        )


def _first_duplicate(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is declared twice")
        seen.add(name)


def _node(name: str, config: NodeConfig, catalog: Catalog) -> Node:
    gpus = []
    for group in config.gpus:
        device = catalog.devices[group.type]
        memory = group.memory_gib or device.memory_gib
        profiles = {p.name: p for p in device.mig}
        for _ in range(group.count):
            index = len(gpus)
            slices = tuple(MigSlice(f"gpu{index}/mig{k}", p, profiles[p].memory_gib, profiles[p].compute_fraction)
                           for k, p in enumerate(group.mig or ()))
            gpus.append(Gpu(index, group.type, memory, slices))
    return Node(name, tuple(gpus), config.cpu_slots)


def _pool(config: PoolConfig, catalog: Catalog) -> Pool:
    return Pool(config.name, tuple(_node(name, node, catalog) for node in config.nodes for name in node.names()))


@dataclass(frozen=True)
class SchedulingSetup:
    """What the server hands the scheduler each pass, built once from the config."""

    pools: tuple[Pool, ...]
    quotas: tuple[Quota, ...]
    policy: SchedulerPolicy
    priority_classes: tuple[tuple[str, int], ...]
    default_priority_class: str

    def priority(self, name: str | None) -> int:
        """The priority of a class name (None: the default class); an unknown name is a clear error."""
        classes = dict(self.priority_classes)
        key = self.default_priority_class if name is None else name
        if key not in classes:
            raise SchedulingConfigError(f"priority: unknown class {key!r} (known: {', '.join(classes)})")
        return classes[key]

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise SchedulingConfigError(f"pool: unknown pool {name!r} (known: {', '.join(p.name for p in self.pools)})")

    def state(self, running: tuple[RunningJob, ...], waiting: tuple[WaitingJob, ...], now: float) -> ClusterState:
        return ClusterState(self.pools, running, waiting, self.quotas, now, self.policy)


def problem_lines(err: ValidationError, prefix: str = "") -> list[str]:
    """`pools[0].nodes[1].gpus[0].type: unknown GPU type ...` for each problem."""
    lines = []
    for item in err.errors():
        where = prefix
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return lines


def load_scheduling_config(raw: Any, *, source: str = "scheduling", catalog: Catalog | None = None) -> SchedulingSetup:
    """Validate a scheduling section (a mapping, e.g. from the server's YAML) and build it.

    Raises SchedulingConfigError listing every problem as `field: message`, each field under `source`.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SchedulingConfigError(f"{source}: expected a mapping (pools:, priority_classes:, quotas: ...), "
                                    f"got {type(raw).__name__}")
    catalog = catalog or load_catalog()
    try:
        config = SchedulingConfig.model_validate(raw, context={"catalog": catalog})
    except ValidationError as err:
        raise SchedulingConfigError("\n".join([f"{source}: invalid scheduling config",
                                               *(f"  {line}" for line in problem_lines(err, source))])) from None
    return config.build(catalog)
