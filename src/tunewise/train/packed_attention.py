"""Attention per packed example: only the (query, key) pairs inside each example are computed.

transformers turns the position_ids restarts of a packed row into a block-diagonal mask, and SDPA
then computes every pair of the whole max_length row and masks most of them out. With chat data
(a few hundred tokens per example, 512-token rows) that is 5-10x the useful attention work, about
a seventh of a CPU training step. `packed_attention` runs causal attention once per example
instead; anything that is not a packed training forward on CPU (padded batches, generation with a
cache, CUDA) goes to the ordinary SDPA path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tunewise.train.kernel_threads import balanced_groups, run_split, worker_count

PACKED_ATTENTION = "tunewise_packed_sdpa"
# Whole examples in one-thread workers (`_ExamplesInWorkers`); False: one example after another, each
# kernel on torch's intra-op threads (bench/attention_ab.py compares the two).
EXAMPLES_IN_WORKERS = True


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


@torch.compiler.disable  # example lengths change every batch: compiled layers call it eagerly
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
    p = dropout if module.training else 0.0
    # Token-major views: (batch, heads, length, dim) tensors here are (batch, length, heads, dim) in
    # memory, as the projections wrote them, so flattening to (tokens, heads, dim) copies nothing.
    q, k, v = (x.transpose(1, 2).reshape(batch * length, x.shape[1], head_dim) for x in (query, key, value))
    scale = scaling if scaling is not None else head_dim**-0.5
    return _per_example_sdpa(q, k, v, lengths, scale, p).view(batch, length, heads, head_dim), None


def _per_example_sdpa(q, k, v, lengths: list[int], scale: float, dropout: float) -> torch.Tensor:
    """Causal SDPA per example of token-major (tokens, heads, dim) tensors; SDPA reads the strided views."""
    if EXAMPLES_IN_WORKERS and dropout == 0.0 and q.device.type == "cpu":
        return _ExamplesInWorkers.apply(q, k, v, tuple(lengths), scale)
    gqa = k.shape[1] != q.shape[1]
    # squeeze(0), not [0]: a view's backward is free, a select's allocates and fills a zeroed copy.
    outputs = [F.scaled_dot_product_attention(_heads_first(qi), _heads_first(ki), _heads_first(vi),
                                              dropout_p=dropout, is_causal=True, scale=scale,
                                              enable_gqa=gqa).squeeze(0).transpose(0, 1)
               for qi, ki, vi in zip(q.split(lengths), k.split(lengths), v.split(lengths))]
    return torch.cat(outputs)


def _heads_first(x: torch.Tensor) -> torch.Tensor:
    """(length, heads, dim) -> a (1, heads, length, dim) view, the layout SDPA's kernels take."""
    return x.transpose(0, 1)[None]


class _ExamplesInWorkers(torch.autograd.Function):
    """Causal attention per example on CPU, whole examples shared out among one-thread workers.

    One example's attention is too small a kernel for torch's two intra-op threads (`kernel_threads`);
    here each worker runs whole examples, forward and backward, with PyTorch's own CPU flash kernels
    (grouped-query attention included). In paired steps on the bundled model (`python
    bench/attention_ab.py --full`, BENCHMARKS.md) LoRA steps ran 1.06x faster with eager layers and
    1.12x with compiled ones (medians of 12 pairs).
    """

    @staticmethod
    def forward(ctx, q, k, v, lengths, scale):
        spans = _spans(lengths)
        out = torch.empty_like(q)
        logsumexp: dict[int, torch.Tensor] = {}

        def attend(group: list[int]) -> None:
            for index in group:
                at = spans[index]
                o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    _heads_first(q[at]), _heads_first(k[at]), _heads_first(v[at]), 0.0, True, scale=scale)
                out[at] = o[0].transpose(0, 1)
                logsumexp[index] = lse

        groups = balanced_groups([n * n for n in lengths], worker_count())
        run_split(attend, groups)
        ctx.save_for_backward(q, k, v, out)
        ctx.spans, ctx.groups, ctx.scale, ctx.logsumexp = spans, groups, scale, logsumexp
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out = ctx.saved_tensors
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

        def differentiate(group: list[int]) -> None:
            for index in group:
                at = ctx.spans[index]
                grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                    _heads_first(grad_out[at]), _heads_first(q[at]), _heads_first(k[at]), _heads_first(v[at]),
                    _heads_first(out[at]), ctx.logsumexp[index], 0.0, True, scale=ctx.scale)
                for target, grad in zip((grad_q, grad_k, grad_v), grads):
                    target[at] = grad[0].transpose(0, 1)

        run_split(differentiate, ctx.groups)
        return grad_q, grad_k, grad_v, None, None


def _spans(lengths) -> list[slice]:
    spans, start = [], 0
    for n in lengths:
        spans.append(slice(start, start + n))
        start += n
    return spans
