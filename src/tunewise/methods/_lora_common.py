"""Options and builder shared by the LoRA family (lora, dora, qlora): one place, three methods."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

LORA_LEARNING_RATE = 2e-4
LORA_LR_RANGE = (5e-5, 1e-3)
LORA_LR_REASON = "adapters start at zero and need a larger step than full weights; 1e-4 to 3e-4 is the common range"


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: float | None = Field(None, gt=0, description="Scaling numerator; default 2 * r.")
    dropout: float = Field(0.0, ge=0, lt=1, description=(
        "Dropout on the adapter input. At 0 (peft's and torchtune's default) fp32 training runs the adapter "
        "inside a merged weight, fewer matmuls (train/fused_lora.py); 0.05-0.1 can curb overfitting on small data."))
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules to adapt; all-linear covers attention and MLP (not the output head)."
    )
    rslora: bool = Field(False, description="Rank-stabilised scaling alpha / sqrt(r).")

    @property
    def resolved_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.r


def lora_warnings(cfg: LoraOptions) -> list[str]:
    out = []
    if cfg.alpha is not None and cfg.alpha <= cfg.r:
        out.append(
            f"method.alpha={cfg.alpha:g} with r={cfg.r}: alpha <= r shrinks the update scale (alpha/r <= 1); "
            f"practice uses alpha = 2 * r = {2 * cfg.r}"
        )
    if cfg.r > 256:
        out.append(f"method.r={cfg.r} is very high for LoRA: most of the rank usually goes unused; 8-64 is typical")
    return out


def build_lora_model(model: Any, cfg: LoraOptions, *, use_dora: bool = False) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.resolved_alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        use_rslora=cfg.rslora,
        use_dora=use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
