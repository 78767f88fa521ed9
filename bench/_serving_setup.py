"""What every side of the serving benchmark shares: adapters on the bundled model, skewed prompts.

Adapters are random LoRA weights (speed does not depend on their values), written once to
$TUNEWISE_HOME/bench-serving/ and reused. Prompts are chat conversations of log-normal length,
tokenized with the model's chat template, so every side gets the same token ids.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

WORDS = ("the model answers questions about orders refunds shipping accounts passwords invoices "
         "delivery times products sizes colours warranty returns stores opening hours payment "
         "cards discounts subscriptions support tickets please explain briefly why how when").split()


def adapter_dirs(base_dir: Path, count: int, *, r: int, targets: list[str] | str, tag: str) -> list[Path]:
    """`count` LoRA adapters (rank r on `targets`) with random non-zero weights, made once."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunewise.workspace import home

    root = home() / "bench-serving" / tag
    dirs = [root / f"adapter-{i:03d}" for i in range(count)]
    missing = [d for d in dirs if not (d / "adapter_model.safetensors").is_file()]
    if not missing:
        return dirs
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, lora_dropout=0.0,
                                            task_type="CAUSAL_LM"))
    for folder in missing:
        torch.manual_seed(int(folder.name.split("-")[1]))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_A" in name:
                    torch.nn.init.kaiming_uniform_(param, a=math.sqrt(5))
                elif "lora_B" in name:
                    param.normal_(0.0, 0.01)
        model.save_pretrained(folder)
    return dirs


def skewed_prompts(tokenizer: Any, count: int, *, seed: int = 0, median_words: int = 30,
                   max_words: int = 300) -> list[list[int]]:
    """`count` chat prompts whose user message has a log-normal word count (a long tail)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        words = min(max_words, max(3, int(rng.lognormvariate(math.log(median_words), 0.8))))
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        prompts.append(list(ids))
    return prompts


def zipf_choices(count: int, n_items: int, *, seed: int, exponent: float = 1.0) -> list[int]:
    """`count` draws from a power-law popularity over n_items (item k has weight 1 / (k+1)^exponent)."""
    rng = random.Random(seed)
    weights = [1.0 / (k + 1) ** exponent for k in range(n_items)]
    return rng.choices(range(n_items), weights=weights, k=count)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
