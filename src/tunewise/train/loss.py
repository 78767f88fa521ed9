"""The training loss: summed cross-entropy over labelled tokens only.

The output head runs only at positions that carry a label. With assistant-only loss most
positions carry none, and the head (vocabulary x hidden) is a large share of a small model's
FLOPs, so this saves real time. Sums (not means) let gradient accumulation weight every token
equally, whatever the number of labelled tokens in each micro-batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100


def _causal_lm(model: Any) -> Any:
    # A peft model wraps the transformers model; LoRA/IA3/DoRA layers live inside it.
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def labelled_loss_sum(model: Any, batch: dict[str, torch.Tensor], *, head_only_on_labels: bool) -> tuple[torch.Tensor, int]:
    """Return (sum of token losses, number of labelled tokens) for one micro-batch."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    mask = targets != IGNORE
    count = int(mask.sum())
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    if head_only_on_labels:
        lm = _causal_lm(model)
        hidden = lm.get_decoder()(**inputs, use_cache=False).last_hidden_state
        logits = lm.get_output_embeddings()(hidden[:, :-1][mask])
        loss = F.cross_entropy(logits.float(), targets[mask], reduction="sum")
        return loss, count
    # Prompt and prefix tuning: peft prepends virtual tokens inside forward(); keep the real positions.
    inputs.pop("position_ids", None)
    logits = model(**inputs, use_cache=False).logits[:, -labels.shape[1] :]
    flat = logits[:, :-1][mask]
    return F.cross_entropy(flat.float(), targets[mask], reduction="sum"), count
