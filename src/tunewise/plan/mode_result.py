"""What the plan found for one adaptation mode: memory, placement, time and cost.

Below both the planner, which fills it, and the recommendation rules, which read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunewise.plan.hardware import GIB
from tunewise.plan.memory import MemoryEstimate


@dataclass
class ModeResult:
    mode: str
    memory: MemoryEstimate  # per device, in the configuration below
    single_device_peak_bytes: int  # unsharded, on one device: what published tables quote
    fits: bool
    gpus_needed: int | None  # None: does not fit at any GPU count at this micro-batch
    gpus_used: int
    sharding: str
    gradient_checkpointing: bool
    tokens_per_s: float
    throughput_source: str
    hours_per_epoch: float
    cost_usd: float
    cost_range_usd: tuple[float, float]
    scheduling: str
    scheduling_short: str = ""
    mig_slice: str | None = None
    policy: str | None = None  # dpo/ppo: full or lora
    within_budget: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "peak_memory_gb": round(self.memory.peak_bytes / GIB, 2),
            "peak_memory_bytes": self.memory.peak_bytes,
            "single_gpu_peak_memory_gb": round(self.single_device_peak_bytes / GIB, 2),
            "breakdown_gb": {k: round(v / GIB, 3) for k, v in self.memory.breakdown.items()},
            "peak_phase": self.memory.peak_phase,
            "trainable_params": self.memory.trainable_params,
            "fits": self.fits,
            "gpus_needed": self.gpus_needed,
            "gpus_used": self.gpus_used,
            "sharding": self.sharding,
            "gradient_checkpointing": self.gradient_checkpointing,
            "policy": self.policy,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "throughput_source": self.throughput_source,
            "hours_per_epoch": round(self.hours_per_epoch, 4),
            "cost_usd": round(self.cost_usd, 2),
            "cost_range_usd": [round(c, 2) for c in self.cost_range_usd],
            "within_budget": self.within_budget,
            "scheduling": self.scheduling,
            "scheduling_short": self.scheduling_short,
            "mig_slice": self.mig_slice,
            "notes": self.memory.notes + self.notes,
        }
