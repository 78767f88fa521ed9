"""DoRA: LoRA with the weight split into magnitude and direction (Liu et al., 2024)."""

from tunewise.methods import Method, register_method
from tunewise.methods._lora_common import (
    LORA_LEARNING_RATE,
    LORA_LR_RANGE,
    LORA_LR_REASON,
    LoraOptions,
    build_lora_model,
    lora_warnings,
)


class DoraConfig(LoraOptions):
    pass


METHOD = register_method(
    Method(
        name="dora",
        description="Weight-decomposed LoRA: trains magnitude and low-rank direction; closer to full fine-tuning.",
        config_class=DoraConfig,
        build=lambda model, cfg: build_lora_model(model, cfg, use_dora=True),
        default_learning_rate=LORA_LEARNING_RATE,
        usual_learning_rate=LORA_LR_RANGE,
        learning_rate_reason=LORA_LR_REASON,
        check_options=lora_warnings,
    )
)
