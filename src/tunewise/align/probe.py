"""KL to the reference policy, measured on a few fixed held-out examples while training.

DPO, ORPO and KTO report rewards and margins but not how far the policy has drifted from its
reference. The probe computes the exact per-token KL(policy || reference) over the whole
vocabulary on the answer tokens of up to `max_examples` rows: two forward passes per log step.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any


@contextmanager
def reference_of(model: Any, ref_model: Any | None):
    """Yield the reference policy: the adapter switched off, else the frozen copy, else None."""
    if ref_model is not None:
        yield ref_model
    elif hasattr(model, "disable_adapter") and getattr(model, "peft_config", None):
        with model.disable_adapter():
            yield model
    else:
        yield None


class KLProbe:
    """Mean per-token KL(policy || reference) on answer tokens, in nats.

    Args:
        rows: TRL-format rows ({"prompt", "chosen"} or {"prompt", "completion"}); the first
            `max_examples` are used.
        tokenizer: the policy's tokenizer (chat template applied as in training).
        max_length: tokens kept per sequence.
    """

    def __init__(self, rows: list[dict[str, Any]], tokenizer: Any, *, max_examples: int = 4, max_length: int = 256):
        self.batch = _encode(rows[:max_examples], tokenizer, max_length) if rows else None

    def measure(self, model: Any, ref_model: Any | None = None) -> float | None:
        import torch

        if self.batch is None:
            return None
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in self.batch.items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                policy_logits = _logits(model, batch)
                with reference_of(model, ref_model) as reference:
                    if reference is None:
                        return None
                    ref_logits = _logits(reference, batch)
        finally:
            model.train(was_training)
        logp = torch.log_softmax(policy_logits.float(), dim=-1)
        logq = torch.log_softmax(ref_logits.float(), dim=-1)
        per_token = (logp.exp() * (logp - logq)).sum(-1)  # (batch, seq-1)
        mask = batch["answer_mask"][:, 1:].float()
        return float((per_token * mask).sum() / mask.sum().clamp(min=1))


def _logits(model: Any, batch: dict[str, Any]) -> Any:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    return out.logits[:, :-1]


def _encode(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> dict[str, Any] | None:
    import torch

    from tunewise.align.data import row_tool_list

    sequences, answer_starts = [], []
    for row in rows:
        answer = row.get("chosen") or row.get("completion")
        if not answer:
            continue
        tools = row_tool_list(row)
        extra = {"tools": tools} if tools else {}  # as the trainer renders the row
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True,
                                                   return_dict=True, **extra)["input_ids"]
        full_ids = tokenizer.apply_chat_template(row["prompt"] + answer, tokenize=True, return_dict=True,
                                                 **extra)["input_ids"]
        sequences.append(list(full_ids)[:max_length])
        answer_starts.append(min(len(prompt_ids), max_length))
    if not sequences:
        return None
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    answer_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (seq, start) in enumerate(zip(sequences, answer_starts)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        answer_mask[i, start : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "answer_mask": answer_mask}
