"""Full fine-tuning: every weight is trained; the artifact is a whole model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.methods import Method, register_method


class FullConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    freeze_embeddings: bool = Field(False, description="Keep the token embeddings (and a tied head) frozen.")


def build(model: Any, cfg: FullConfig) -> Any:
    for param in model.parameters():
        param.requires_grad_(True)
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


METHOD = register_method(
    Method(
        name="full",
        description="Train every weight; highest capacity, about 4x the weights' memory with AdamW, full-size artifact.",
        config_class=FullConfig,
        build=build,
        default_learning_rate=2e-5,
        usual_learning_rate=(1e-6, 1e-4),
        learning_rate_reason="large steps on all weights overwrite what the base knows (catastrophic forgetting); "
        "1e-5 to 5e-5 is the common range",
        adapter=False,
    )
)
