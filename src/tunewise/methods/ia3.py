"""IA3: learned rescaling vectors on keys, values and the MLP (Liu et al., 2022); tiny artifact."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.methods import Method, register_method


class Ia3Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_modules: list[str] | None = Field(
        None, description="Modules to rescale; default: peft's choice for the architecture (k, v, down projections)."
    )
    feedforward_modules: list[str] | None = Field(
        None, description="Which of the targets are feed-forward (scaled on the input side)."
    )


def build(model: Any, cfg: Ia3Config) -> Any:
    from peft import IA3Config, get_peft_model

    config = IA3Config(
        task_type="CAUSAL_LM",
        target_modules=cfg.target_modules,
        feedforward_modules=cfg.feedforward_modules,
    )
    return get_peft_model(model, config)


METHOD = register_method(
    Method(
        name="ia3",
        description="Learned scaling vectors on attention and MLP activations; far fewer parameters than LoRA.",
        config_class=Ia3Config,
        build=build,
        default_learning_rate=3e-3,
        usual_learning_rate=(1e-4, 1e-2),
        learning_rate_reason="IA3 vectors start at one and move slowly; 1e-3 to 5e-3 is common",
    )
)
