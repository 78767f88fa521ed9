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

PACKED_ATTENTION = "tunewise_packed_sdpa"


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
    """Causal SDPA per example of token-major (tokens, heads, dim) tensors; SDPA reads the strided views.

    squeeze(0), not [0]: a view's backward is free, a select's allocates and fills a zeroed copy.
    """
    gqa = k.shape[1] != q.shape[1]
    outputs = [F.scaled_dot_product_attention(qi.transpose(0, 1)[None], ki.transpose(0, 1)[None], vi.transpose(0, 1)[None],
                                              dropout_p=dropout, is_causal=True, scale=scale,
                                              enable_gqa=gqa).squeeze(0).transpose(0, 1)
               for qi, ki, vi in zip(q.split(lengths), k.split(lengths), v.split(lengths))]
    return torch.cat(outputs)
