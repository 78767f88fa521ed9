"""QLoRA: LoRA on a base stored in 4-bit NF4 with double quantization (Dettmers et al., 2023)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunewise.methods import Method, register_method
from tunewise.methods._lora_common import (
    LORA_LEARNING_RATE,
    LORA_LR_RANGE,
    LORA_LR_REASON,
    LoraOptions,
    build_lora_model,
    lora_warnings,
)


class QloraConfig(LoraOptions):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit storage type of the base weights.")
    double_quant: bool = Field(True, description="Quantize the block absmax constants too (saves ~0.4 bit/param).")


def quantization(cfg: QloraConfig, compute_dtype: Any) -> dict[str, Any]:
    """from_pretrained kwargs for the 4-bit base. compute_dtype follows the device policy:
    fp32 on CPU (bf16 compute there is about 20x slower), bf16 on CUDA."""
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant_type,
            bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    }


def build(model: Any, cfg: QloraConfig) -> Any:
    from peft import prepare_model_for_kbit_training

    # Casts norms to fp32 and enables input grads so adapters on a frozen 4-bit base can learn.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return build_lora_model(model, cfg)


METHOD = register_method(
    Method(
        name="qlora",
        description="LoRA on a 4-bit NF4 base with double quantization; the least memory of any method.",
        config_class=QloraConfig,
        build=build,
        default_learning_rate=LORA_LEARNING_RATE,
        usual_learning_rate=LORA_LR_RANGE,
        learning_rate_reason=LORA_LR_REASON,
        quantization=quantization,
        check_options=lora_warnings,
    )
)
