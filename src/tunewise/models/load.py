"""Load tokenizers and models from a resolved directory under a device policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.logs import quieted
from tunewise.models.device import DevicePolicy


def load_tokenizer(model_dir: str | Path) -> Any:
    """The base model's tokenizer, with a pad token (eos when the model defines none)."""
    from transformers import AutoTokenizer

    with quieted():  # transformers' own logging and warnings to the log file
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model_dir: str | Path, policy: DevicePolicy, **extra: Any) -> Any:
    """Load a causal LM on the policy's device and dtype. `extra` carries e.g. a quantization_config."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": policy.dtype}
    if "quantization_config" in extra:
        kwargs["device_map"] = {"": policy.device if policy.device != "cuda" else 0}
    with quieted():  # no weight-loading progress bar between our lines; warnings to the log file
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs, **extra)
    if "quantization_config" not in extra:
        model.to(policy.device)
    return model


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward pass (non-reentrant torch checkpointing).

    transformers 5.x renamed gradient checkpointing to activation checkpointing; the old names warn
    and go in v6. A peft model passes the call through to its base.
    """
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers releases before the rename
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
