"""What a plan is asked: every option of `tunewise plan` and `tunewise.plan.plan()`, defined once.

The command line takes its help text from these fields, so the CLI and the Python function cannot
drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunewise.errors import SpecError

Objective = Literal["instruction", "domain_knowledge", "task_specific", "alignment"]
Checkpointing = Literal["auto", "on", "off"]
Precision = Literal["auto", "fp32", "bf16", "mixed"]
Optimizer = Literal["adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit"]
AlignmentPolicy = Literal["auto", "full", "lora"]


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Bundled model name, local model directory or hub id.")
    params: float | None = Field(None, gt=0, description="Parameter count of a model that is not here, e.g. 7e9.")
    layers: int | None = Field(None, ge=1, description="Decoder layers (with --params).")
    hidden: int | None = Field(None, ge=1, description="Hidden size (with --params).")
    vocab: int | None = Field(None, ge=1, description="Vocabulary size (with --params).")
    intermediate: int | None = Field(None, ge=1, description="MLP intermediate size (with --params).")
    heads: int | None = Field(None, ge=1, description="Attention heads (with --params).")
    kv_heads: int | None = Field(None, ge=1, description="Key/value heads, fewer than heads under GQA (with --params).")

    data: str | None = Field(None, description="Training data file; rows and tokens are counted.")
    tokens: int | None = Field(None, ge=1, description="Dataset size in tokens, instead of a file.")
    examples: int | None = Field(None, ge=1, description="Dataset size in examples, instead of a file.")
    mean_example_tokens: int = Field(512, ge=1, description="Assumed tokens per example with --tokens or --examples.")

    gpu: str = Field("a100-80gb", description="GPU type from the hardware catalog, or cpu for this machine.")
    gpus: int = Field(1, ge=1, description="GPUs available.")
    hardware: str | None = Field(None, description="Hardware/price catalog (YAML) to use instead of the default.")

    seq_len: int = Field(1024, ge=8, description="Sequence length in tokens.")
    micro_batch: int = Field(4, ge=1, description="Sequences per forward pass per GPU.")
    gradient_checkpointing: Checkpointing = Field(
        "auto", description="auto: only where a mode would not fit without it."
    )
    precision: Precision = Field(
        "auto", description="auto: fp32 on CPU, bf16 on GPU (tunewise's device policy); mixed: fp32 master weights and moments."
    )
    optimizer: Optimizer = Field(
        "adamw", description="Optimizer whose states are counted."
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank (lora, qlora, dora).")
    lora_targets: str = Field("all-linear", description="LoRA target modules: all-linear or a comma list (q_proj,v_proj).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (its masks take activation memory).")
    alignment_policy: AlignmentPolicy = Field(
        "auto", description="How DPO/PPO train the policy; auto: full if it fits, else a LoRA adapter."
    )

    objective: Objective = Field("instruction", description="What the fine-tune is for.")
    variants: int = Field(1, ge=1, description="How many fine-tuned variants of this base are needed.")
    budget_usd: float | None = Field(None, gt=0, description="Most the training may cost, in USD.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data.")
    tokenizer_change: bool = Field(False, description="New tokens are added to the vocabulary.")
    reward_signal: bool = Field(False, description="Alignment needs a learned reward model (PPO) rather than preference pairs alone.")

    checkpointing: bool = Field(True, description="Checkpoints are written (makes spot instances usable).")
    checkpoints_kept: int = Field(2, ge=1, description="Checkpoints kept in storage.")
    storage_months: float = Field(1.0, gt=0, description="Months the checkpoints are kept.")
    gpu_hours_per_week: float | None = Field(
        None, gt=0, description="Steady GPU-hours a week, for renting against owning (default: one run a week)."
    )

    @model_validator(mode="after")
    def _check(self) -> PlanRequest:
        if self.model and self.params:
            raise SpecError("give either a model or --params, not both")
        if self.data and (self.tokens or self.examples):
            raise SpecError("give either a data file or --tokens/--examples, not both")
        return self

    def lora_target_list(self) -> tuple[str, ...] | str:
        if self.lora_targets.strip() == "all-linear":
            return "all-linear"
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
