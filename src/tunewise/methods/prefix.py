"""Prefix tuning: trainable key/value prefixes at every layer (Li & Liang, 2021)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.methods import Method, register_method


class PrefixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Prefix length per layer.")
    prefix_projection: bool = Field(False, description="Reparameterise the prefix through an MLP.")


def build(model: Any, cfg: PrefixConfig) -> Any:
    from peft import PrefixTuningConfig, get_peft_model

    config = PrefixTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=cfg.num_virtual_tokens,
        prefix_projection=cfg.prefix_projection,
    )
    return get_peft_model(model, config)


METHOD = register_method(
    Method(
        name="prefix",
        description="Trainable key/value prefixes at every layer; the base is untouched.",
        config_class=PrefixConfig,
        build=build,
        default_learning_rate=1e-2,
        usual_learning_rate=(1e-4, 5e-2),
        learning_rate_reason="prefixes are few parameters trained from scratch; 1e-3 to 3e-2 is common",
        prepends_virtual_tokens=True,
    )
)
