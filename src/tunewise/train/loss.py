"""The training loss: summed cross-entropy over labelled tokens only.

The output head runs only at positions that carry a label. With assistant-only loss most
positions carry none, and the head (vocabulary x hidden) is a large share of a small model's
FLOPs, so this saves real time. Sums (not means) let gradient accumulation weight every token
equally, whatever the number of labelled tokens in each micro-batch.

Next-token accuracy (argmax == label on the same labelled tokens) comes with the loss: it is read
from the row maxima the loss computes anyway, so it costs a comparison per token, not a second
pass over the logits (on 2 CPU cores, 21 us per 512-row chunk against 2.3 s for the head's forward
and backward over 1,024 positions of SmolLM2-135M's 49k vocabulary).

Packed batches use attention per example (`packed_attention.py`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from tunewise.train.packed_attention import use_packed_attention

IGNORE = -100


def _causal_lm(model: Any) -> Any:
    # A peft model wraps the transformers model; LoRA/IA3/DoRA layers live inside it.
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class LabelledLoss(NamedTuple):
    """One micro-batch's loss over its labelled tokens."""

    loss_sum: torch.Tensor  # summed cross-entropy (differentiable)
    count: int  # labelled tokens
    correct: int  # labelled tokens whose label is the model's top-scoring token


def labelled_loss_sum(model: Any, batch: dict[str, torch.Tensor], *, head_only_on_labels: bool) -> LabelledLoss:
    """Return (sum of token losses, number of labelled tokens, tokens predicted right) for one micro-batch."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    mask = targets != IGNORE
    count = int(mask.sum())
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    if head_only_on_labels:
        lm = _causal_lm(model)
        if "position_ids" in inputs:
            use_packed_attention(lm)
        hidden = lm.get_decoder()(**inputs, use_cache=False).last_hidden_state
        selected, wanted = hidden[:, :-1][mask], targets[mask]
        head = lm.get_output_embeddings()
        if type(head) is torch.nn.Linear:  # not when an adapter wraps the head: its own forward must run
            loss, correct = head_cross_entropy_and_hits(selected, head.weight, head.bias, wanted)
            return LabelledLoss(loss, count, int(correct))
        return _plain_loss(head(selected), wanted, count)
    # Prompt and prefix tuning: peft prepends virtual tokens inside forward(); keep the real positions.
    inputs.pop("position_ids", None)
    logits = model(**inputs, use_cache=False).logits[:, -labels.shape[1] :]
    return _plain_loss(logits[:, :-1][mask], targets[mask], count)


def _plain_loss(logits: torch.Tensor, targets: torch.Tensor, count: int) -> LabelledLoss:
    logits = logits.float()
    correct = int((logits.detach().argmax(dim=-1) == targets).sum())
    return LabelledLoss(F.cross_entropy(logits, targets, reduction="sum"), count, correct)


# --- the output head and the loss, chunk by chunk --------------------------------------------------

# 512 positions x a 49k vocabulary = 100 MB of fp32 logits per chunk: a small part of a step's
# memory, and on CPU the head's matmuls run measurably faster with 512 rows than with 128.
HEAD_CHUNK_ROWS = 512


def head_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           targets: torch.Tensor, chunk_rows: int = HEAD_CHUNK_ROWS) -> torch.Tensor:
    """sum_i cross_entropy(hidden_i @ weight.T + bias, targets_i), never holding all the logits.

    Args:
        hidden: (positions, hidden) states at the labelled positions.
        weight: (vocab, hidden) output head; bias: (vocab,) or None.
        targets: (positions,) token ids.
        chunk_rows: positions per chunk.
    Equal to F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="sum") and
    its gradients (logits in fp32 as there). The (positions x vocab) logits and their gradient are
    the largest tensors of a small model's step (2 x 2,000 x 49k x 4 bytes = 790 MB); chunked, they
    never exist in full.
    """
    return head_cross_entropy_and_hits(hidden, weight, bias, targets, chunk_rows)[0]


def head_cross_entropy_and_hits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                targets: torch.Tensor, chunk_rows: int = HEAD_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """(head_cross_entropy_sum, number of positions whose target has the highest logit), in one pass.

    A target counts as a hit when its logit equals the row maximum: argmax's answer, except on an
    exact tie, where argmax would pick the lowest id and this counts the target as right.
    """
    tensors = (hidden, weight, bias)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors):
        return _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, (False, False, False))[:2]
    return _ChunkedHeadCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    """The gradients are computed in the forward pass, chunk by chunk, and scaled in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_rows):
        total, hits, *grads = _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, ctx.needs_input_grad[:3])
        ctx.save_for_backward(*grads)
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.mark_non_differentiable(hits)
        return total, hits

    @staticmethod
    def backward(ctx, grad_output, _grad_hits):
        scale = grad_output.float()
        grads = [None if g is None else (g * scale).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None)


def _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, wanted) -> tuple:
    """(loss sum, hits, d/d hidden, d/d weight, d/d bias); a gradient is None where not `wanted`. Grads in fp32."""
    grad_hidden = torch.empty_like(hidden, dtype=torch.float32) if wanted[0] else None
    grad_weight = torch.zeros_like(weight, dtype=torch.float32) if wanted[1] else None
    grad_bias = torch.zeros_like(bias, dtype=torch.float32) if bias is not None and wanted[2] else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    hits = torch.zeros((), dtype=torch.int64, device=hidden.device)
    buffer = _logits_buffer(min(chunk_rows, hidden.shape[0]), hidden, weight)
    for start in range(0, hidden.shape[0], chunk_rows):
        h, t = hidden[start : start + chunk_rows], targets[start : start + chunk_rows]
        logits = _logits_into(buffer, h, weight, bias)
        # exp(logits - max) in place, then the log of its row sums: one pass fewer than logsumexp, which
        # also allocates a temporary as large as the logits.
        target_logit = logits.gather(1, t[:, None]).squeeze(1)
        row_max = logits.amax(dim=1)
        hits += (target_logit >= row_max).sum()
        exp = logits.sub_(row_max[:, None]).exp_()
        row_sum = exp.sum(dim=1)
        total += (row_max + row_sum.log() - target_logit).sum()
        if not any(wanted):
            continue
        # d loss / d logits = exp / row_sum - onehot(target) = (exp - row_sum * onehot) / row_sum: the
        # division is applied to the (rows x hidden) products instead of the (rows x vocab) logits.
        exp[torch.arange(len(t), device=t.device), t] -= row_sum
        inverse = row_sum.reciprocal()[:, None]
        if grad_hidden is not None:
            grad_hidden[start : start + chunk_rows] = (exp.to(weight.dtype) @ weight).mul_(inverse)
        if grad_weight is not None:
            grad_weight.addmm_(exp.t(), h.float() * inverse)
        if grad_bias is not None:
            grad_bias += (inverse.t() @ exp).squeeze(0)
    return total, hits, grad_hidden, grad_weight, grad_bias


def _logits_buffer(rows: int, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """One fp32 logits buffer reused by every chunk: a fresh 100 MB tensor per chunk costs its page faults
    again (on CPU, 512 x 49k logits written into a new tensor took 1.4x as long as into a reused one).
    None in lower precision, where the logits are computed in it and then widened to fp32."""
    if hidden.dtype != torch.float32 or weight.dtype != torch.float32:
        return None
    return torch.empty((rows, weight.shape[0]), dtype=torch.float32, device=weight.device)


def _logits_into(buffer: torch.Tensor | None, h: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
    if buffer is None:
        return F.linear(h, weight, bias).float()
    out = buffer[: h.shape[0]]
    if bias is None:
        return torch.mm(h, weight.t(), out=out)
    return torch.addmm(bias, h, weight.t(), out=out)
