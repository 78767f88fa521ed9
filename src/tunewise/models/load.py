"""Load tokenizers and models from a resolved directory under a device policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.models.device import DevicePolicy


def load_tokenizer(model_dir: str | Path) -> Any:
    """The base model's tokenizer, with a pad token (eos when the model defines none)."""
    from transformers import AutoTokenizer

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
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs, **extra)
    if "quantization_config" not in extra:
        model.to(policy.device)
    return model
