"""The training loss: summed cross-entropy over labelled tokens only, and attention per packed example.

The output head runs only at positions that carry a label. With assistant-only loss most
positions carry none, and the head (vocabulary x hidden) is a large share of a small model's
FLOPs, so this saves real time. Sums (not means) let gradient accumulation weight every token
equally, whatever the number of labelled tokens in each micro-batch.

Packed sequences: transformers turns the position_ids restarts into a block-diagonal mask and
SDPA then computes every (query, key) pair of the whole max_length row and masks most of them
out. With chat data (a few hundred tokens per example, 512-token rows) that is 5-10x the useful
attention work, about a seventh of a CPU training step. `packed_attention` runs SDPA once per
example with is_causal instead, so only the pairs that count are computed; anything that is not a
packed training forward (padded batches, generation with a cache) goes to the ordinary SDPA path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100
PACKED_ATTENTION = "tunewise_packed_sdpa"


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
        if "position_ids" in inputs:
            use_packed_attention(lm)
        hidden = lm.get_decoder()(**inputs, use_cache=False).last_hidden_state
        selected, wanted = hidden[:, :-1][mask], targets[mask]
        head = lm.get_output_embeddings()
        if type(head) is torch.nn.Linear:  # not when an adapter wraps the head: its own forward must run
            return head_cross_entropy_sum(selected, head.weight, head.bias, wanted), count
        return F.cross_entropy(head(selected).float(), wanted, reduction="sum"), count
    # Prompt and prefix tuning: peft prepends virtual tokens inside forward(); keep the real positions.
    inputs.pop("position_ids", None)
    logits = model(**inputs, use_cache=False).logits[:, -labels.shape[1] :]
    flat = logits[:, :-1][mask]
    return F.cross_entropy(flat.float(), targets[mask], reduction="sum"), count


# --- the output head and the loss, chunk by chunk --------------------------------------------------

HEAD_CHUNK_ROWS = 128  # 128 x 49k-vocabulary fp32 logits = 25 MB: stays in a server CPU's last-level cache


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
    never exist in full, and each chunk's softmax runs while its logits are still in cache.
    """
    tensors = (hidden, weight, bias)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors):
        return _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, (False, False, False))[0]
    return _ChunkedHeadCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    """The gradients are computed in the forward pass, chunk by chunk, and scaled in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_rows):
        total, *grads = _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, ctx.needs_input_grad[:3])
        ctx.save_for_backward(*grads)
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        scale = grad_output.float()
        grads = [None if g is None else (g * scale).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None)


def _chunked_loss_and_grads(hidden, weight, bias, targets, chunk_rows, wanted) -> tuple:
    """(loss sum, d/d hidden, d/d weight, d/d bias); a gradient is None where not `wanted`. Grads in fp32."""
    grad_hidden = torch.empty_like(hidden, dtype=torch.float32) if wanted[0] else None
    grad_weight = torch.zeros_like(weight, dtype=torch.float32) if wanted[1] else None
    grad_bias = torch.zeros_like(bias, dtype=torch.float32) if bias is not None and wanted[2] else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_rows):
        h, t = hidden[start : start + chunk_rows], targets[start : start + chunk_rows]
        logits = F.linear(h, weight, bias).float()
        lse = torch.logsumexp(logits, dim=1)
        total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
        if not any(wanted):
            continue
        probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
        probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
        if grad_hidden is not None:
            grad_hidden[start : start + chunk_rows] = probs.to(weight.dtype) @ weight
        if grad_weight is not None:
            grad_weight.addmm_(probs.t(), h.float())
        if grad_bias is not None:
            grad_bias += probs.sum(0)
    return total, grad_hidden, grad_weight, grad_bias


# --- attention per packed example ----------------------------------------------------------------


def use_packed_attention(lm: Any) -> None:
    """Switch a transformers model from SDPA to `packed_attention` (once; other implementations are kept).

    The switch is not saved with the model: transformers keeps the attention implementation out of
    config.json, so artifacts load with their usual attention.
    """
    if getattr(lm.config, "_attn_implementation", None) != "sdpa":
        return
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)  # same masks as sdpa where a mask is needed
    lm.set_attn_implementation(PACKED_ATTENTION)


def packed_example_lengths(position_ids: torch.Tensor) -> list[int] | None:
    """Lengths of the examples in a (batch, length) position_ids tensor, row after row; None if not packed.

    Packed rows restart their positions at 0 for every example (padding forms one more example).
    """
    rows, length = position_ids.shape
    if not bool((position_ids[:, 0] == 0).all()):
        return None  # a row continuing earlier positions (a cache offset): not a packed batch
    starts = torch.nonzero(position_ids.reshape(-1) == 0).flatten().tolist()
    if len(starts) == rows:
        return None  # one example per row: ordinary causal attention
    bounds = starts + [rows * length]
    return [end - start for start, end in zip(bounds, bounds[1:])]


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     position_ids: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Causal SDPA within each packed example, nothing across examples.

    query: (batch, heads, length, head_dim); key/value: (batch, kv_heads, length, head_dim).
    Returns (batch, length, heads, head_dim), as transformers' attention functions do.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    # On CUDA the masked kernel is fast and a loop of small per-example kernels is launch-bound;
    # the loop pays off on CPU, where every masked-out pair costs real time.
    wanted = position_ids is not None and query.shape[2] == key.shape[2] and query.device.type == "cpu"
    lengths = packed_example_lengths(position_ids) if wanted else None
    if lengths is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      position_ids=position_ids, **kwargs)
    batch, heads, length, head_dim = query.shape
    kv_heads = key.shape[1]
    p = dropout if module.training else 0.0
    # Token-major views: (batch, heads, length, dim) tensors here are (batch, length, heads, dim) in
    # memory, as the projections wrote them, so flattening to (tokens, heads, dim) and cutting the
    # examples out along the first dimension copies nothing; SDPA reads the strided views directly.
    def examples(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.transpose(1, 2).reshape(batch * length, x.shape[1], head_dim).split(lengths)

    outputs = [F.scaled_dot_product_attention(qi.unsqueeze(0).transpose(1, 2), ki.unsqueeze(0).transpose(1, 2),
                                              vi.unsqueeze(0).transpose(1, 2), dropout_p=p, is_causal=True,
                                              scale=scaling, enable_gqa=kv_heads != heads)[0].transpose(0, 1)
               for qi, ki, vi in zip(examples(query), examples(key), examples(value))]
    return torch.cat(outputs).view(batch, length, heads, head_dim), None
