"""LoRA: frozen base, trainable low-rank updates B @ A on every linear layer (Hu et al., 2022)."""

from tunewise.methods import Method, register_method
from tunewise.methods._lora_common import (
    LORA_LEARNING_RATE,
    LORA_LR_RANGE,
    LORA_LR_REASON,
    LoraOptions,
    build_lora_model,
    lora_warnings,
)


class LoraConfig(LoraOptions):
    pass


METHOD = register_method(
    Method(
        name="lora",
        description="Low-rank adapters on a frozen base; small artifact, about a third of full fine-tuning memory.",
        config_class=LoraConfig,
        build=lambda model, cfg: build_lora_model(model, cfg),
        default_learning_rate=LORA_LEARNING_RATE,
        usual_learning_rate=LORA_LR_RANGE,
        learning_rate_reason=LORA_LR_REASON,
        check_options=lora_warnings,
    )
)
