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
    """One mode of a plan. `memory` is the chosen setup: the asked micro-batch and sequence length,
    checkpointing only where needed; `lean_memory` the same placement at micro-batch 1 with gradient
    checkpointing, the least the mode can run in and the setup published figures usually quote.
    Time and cost are None when the plan has no dataset size."""

    mode: str
    memory: MemoryEstimate  # per device, in the configuration below
    lean_memory: MemoryEstimate  # per device, micro-batch 1 with gradient checkpointing, same placement
    single_device_peak_bytes: int  # unsharded, on one device: what published tables quote
    fits: bool
    gpus_needed: int | None  # None: does not fit at any GPU count at this micro-batch
    gpus_used: int
    sharding: str
    gradient_checkpointing: bool
    tokens_per_s: float
    throughput_source: str
    hours_per_epoch: float | None  # None: no dataset size
    cost_usd: float | None
    cost_range_usd: tuple[float, float] | None
    scheduling: str
    scheduling_short: str = ""
    mig_slice: str | None = None
    policy: str | None = None  # dpo/ppo: full or lora
    within_budget: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        setup, lean = self.memory.setup, self.lean_memory.setup
        return {
            "mode": self.mode,
            "micro_batch": setup.micro_batch,
            "seq_len": setup.seq_len,
            "peak_memory_gb": round(self.memory.peak_bytes / GIB, 2),
            "peak_memory_bytes": self.memory.peak_bytes,
            "lean_peak_memory_gb": round(self.lean_memory.peak_bytes / GIB, 2),
            "lean_peak_memory_bytes": self.lean_memory.peak_bytes,
            "lean_setup": {"micro_batch": lean.micro_batch, "seq_len": lean.seq_len,
                           "gradient_checkpointing": lean.gradient_checkpointing, "gpus": lean.num_gpus,
                           "sharding": lean.sharding},
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
            "hours_per_epoch": None if self.hours_per_epoch is None else round(self.hours_per_epoch, 4),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 2),
            "cost_range_usd": None if self.cost_range_usd is None else [round(c, 2) for c in self.cost_range_usd],
            "within_budget": self.within_budget,
            "scheduling": self.scheduling,
            "scheduling_short": self.scheduling_short,
            "mig_slice": self.mig_slice,
            "notes": self.memory.notes + self.notes,
        }
