"""Prompt tuning: trainable soft-prompt embeddings prepended to the input (Lester et al., 2021)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.methods import Method, register_method


class PromptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Length of the soft prompt.")
    init_text: str | None = Field(
        None, description="Initialise the soft prompt from this text's embeddings (often converges faster)."
    )


def build(model: Any, cfg: PromptConfig) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    kwargs: dict[str, Any] = {"task_type": "CAUSAL_LM", "num_virtual_tokens": cfg.num_virtual_tokens}
    if cfg.init_text:
        kwargs.update(
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=cfg.init_text,
            tokenizer_name_or_path=getattr(model.config, "_name_or_path", None),
        )
    return get_peft_model(model, PromptTuningConfig(**kwargs))


METHOD = register_method(
    Method(
        name="prompt",
        description="A trainable soft prompt in front of every input; the smallest artifact of all.",
        config_class=PromptConfig,
        build=build,
        default_learning_rate=3e-2,
        usual_learning_rate=(1e-3, 3e-1),
        learning_rate_reason="soft prompts need large steps to move away from their initialisation; 1e-2 to 1e-1 is common",
        prepends_virtual_tokens=True,
    )
)
