"""One forward pass over many requests at once: their new tokens packed into one row, no padding.

Every linear layer runs once over all the step's tokens (prefill chunks and one decode token per
running request), which is where batching pays: the base weights are read once per step instead
of once per request. Attention runs per request against that request's own key/value cache, so no
request ever sees another's tokens and none is padded: a request's arithmetic does not depend on
what shares its batch. LoRA adapters apply per segment: the step's tokens are ordered by adapter,
and each adapter's `lora_B(lora_A(x)) * scaling` (peft's own expression) is added to its rows.

The layers are the Hugging Face model's own modules and weights (RMSNorm, rotary embedding, MLP
activation); only the orchestration is ours. Llama-family decoders are supported (Llama, Mistral,
Qwen2, Qwen3: the SmolLM2 family is Llama).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tunewise.serve.errors import ModelRefused
from tunewise.serve.lora_weights import LoraAdapter

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


class SequenceCache:
    """Keys and values of one request: [layers, kv heads, capacity, head dim] each."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys
        self.values = values
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()


@dataclass
class Chunk:
    """Tokens of one request to run this step, from position `cache.length` on."""

    cache: SequenceCache
    tokens: list[int]
    adapter: LoraAdapter | None
    want_logits: bool


class PackedForward:
    """The forward pass of one loaded base model (or merged model) over packed chunks."""

    def __init__(self, model: Any):
        config = model.config
        if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            raise ModelRefused(f"model type {getattr(config, 'model_type', '?')!r} is not supported by the "
                               f"transformers backend (supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
                               hint="serve it with backend: vllm")
        self.model = model
        inner = model.model
        self.embed, self.layers, self.norm, self.rotary = inner.embed_tokens, inner.layers, inner.norm, inner.rotary_emb
        self.lm_head = model.lm_head
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.scaling = attn.scaling
        self.act = self.layers[0].mlp.act_fn
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.vocab_size = config.vocab_size
        self.max_positions = int(getattr(config, "max_position_embeddings", 2048))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def cache_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    def new_cache(self, capacity: int) -> SequenceCache:
        shape = (self.num_layers, self.num_kv_heads, capacity, self.head_dim)
        return SequenceCache(torch.empty(shape, dtype=self.dtype, device=self.device),
                             torch.empty(shape, dtype=self.dtype, device=self.device))

    @torch.inference_mode()
    def forward(self, chunks: list[Chunk]) -> torch.Tensor:
        """Run the chunks; returns logits (fp32) of the last token of every chunk with want_logits,
        in the order of `chunks`, and advances each cache."""
        order = sorted(range(len(chunks)), key=lambda i: id(chunks[i].adapter) if chunks[i].adapter else 0)
        ordered = [chunks[i] for i in order]
        tokens, positions, spans, segments = [], [], [], []
        for chunk in ordered:
            start = len(tokens)
            tokens.extend(chunk.tokens)
            positions.extend(range(chunk.cache.length, chunk.cache.length + len(chunk.tokens)))
            spans.append((start, len(tokens)))
            if chunk.adapter is not None:
                if segments and segments[-1][0] is chunk.adapter:
                    segments[-1] = (chunk.adapter, segments[-1][1], len(tokens))
                else:
                    segments.append((chunk.adapter, start, len(tokens)))
        ids = torch.tensor([tokens], device=self.device)
        position_ids = torch.tensor([positions], device=self.device)
        hidden = self.embed(ids)
        cos, sin = self.rotary(hidden, position_ids)
        for index, layer in enumerate(self.layers):
            hidden = self._layer(index, layer, hidden, cos, sin, ordered, spans, segments)
        rows = [spans[k][1] - 1 for k, chunk in enumerate(ordered) if chunk.want_logits]
        for chunk in ordered:
            chunk.cache.length += len(chunk.tokens)
        if not rows:
            return torch.empty(0, self.vocab_size)
        last = self.norm(hidden[:, rows])
        logits = self.lm_head(last)[0].float()
        # back to the callers' order
        wanted = [i for i in order if chunks[i].want_logits]
        position_of = {chunk_index: row for row, chunk_index in enumerate(wanted)}
        back = [position_of[i] for i in range(len(chunks)) if chunks[i].want_logits]
        return logits[back]

    def _layer(self, index: int, layer: Any, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               chunks: list[Chunk], spans: list[tuple[int, int]], segments: list) -> torch.Tensor:
        attn, mlp = layer.self_attn, layer.mlp
        residual = hidden
        x = layer.input_layernorm(hidden)
        length = x.shape[1]
        q = self._linear(attn.q_proj, x, index, "self_attn.q_proj", segments).view(1, length, -1, self.head_dim)
        k = self._linear(attn.k_proj, x, index, "self_attn.k_proj", segments).view(1, length, -1, self.head_dim)
        v = self._linear(attn.v_proj, x, index, "self_attn.v_proj", segments).view(1, length, -1, self.head_dim)
        if hasattr(attn, "q_norm"):  # Qwen3 normalises queries and keys per head
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = _rotate(q, k, cos, sin)
        outputs = [self._attend(index, chunk, q[:, :, a:b], k[:, :, a:b], v[:, :, a:b])
                   for chunk, (a, b) in zip(chunks, spans)]
        attended = torch.cat(outputs, dim=1).reshape(1, length, -1)
        hidden = residual + self._linear(attn.o_proj, attended, index, "self_attn.o_proj", segments)
        residual = hidden
        x = layer.post_attention_layernorm(hidden)
        gate = self._linear(mlp.gate_proj, x, index, "mlp.gate_proj", segments)
        up = self._linear(mlp.up_proj, x, index, "mlp.up_proj", segments)
        return residual + self._linear(mlp.down_proj, self.act(gate) * up, index, "mlp.down_proj", segments)

    def _attend(self, index: int, chunk: Chunk, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of one request's new tokens over its cache; returns [1, new tokens, heads, dim]."""
        cache, start, count = chunk.cache, chunk.cache.length, q.shape[2]
        cache.keys[index, :, start:start + count] = k[0]
        cache.values[index, :, start:start + count] = v[0]
        keys = cache.keys[index, :, :start + count].unsqueeze(0)
        values = cache.values[index, :, :start + count].unsqueeze(0)
        if count == 1:
            return self._attend_one(q, keys[0], values[0])
        mask, causal = None, False
        if start == 0:
            causal = True
        else:  # a later chunk of a long prompt: causal within the chunk, all of the cache before it
            rows = torch.arange(start, start + count, device=q.device)[:, None]
            mask = rows >= torch.arange(start + count, device=q.device)[None, :]
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, scale=self.scaling,
                                             enable_gqa=self.num_heads != self.num_kv_heads)
        return out.transpose(1, 2)

    def _attend_one(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """One decode token, per key/value head: two 2-D matmuls and a softmax.

        Measured on 2 shared cores: PyTorch's CPU flash kernel spends ~7 ms on a single query, and a
        batched matmul of these sizes ~0.7 ms (it splits its few batches across threads, and waits
        for a descheduled one), while a 2-D matmul takes ~8 us. Query heads are grouped by the
        key/value head they share (transformers' pack_gqa), so nothing is repeated."""
        groups = self.num_heads // self.num_kv_heads
        query = q[0, :, 0]  # [heads, dim]
        out = torch.empty_like(query)
        for head in range(self.num_kv_heads):
            rows = slice(head * groups, (head + 1) * groups)
            scores = torch.mm(query[rows], keys[head].t()) * self.scaling  # [group, length]
            out[rows] = torch.mm(torch.softmax(scores, dim=-1), values[head])
        return out.reshape(1, 1, self.num_heads, self.head_dim)

    @staticmethod
    def _linear(module: Any, x: torch.Tensor, index: int, name: str, segments: list) -> torch.Tensor:
        out = F.linear(x, module.weight, module.bias)
        for adapter, lo, hi in segments:
            entry = adapter.layers[index].get(name)
            if entry is not None:
                a, b, scaling = entry
                out[:, lo:hi] += F.linear(F.linear(x[:, lo:hi], a), b) * scaling
        return out


def _rotate(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # transformers' apply_rotary_pos_emb, the same arithmetic in the same order
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (q * cos) + (_rotate_half(q) * sin), (k * cos) + (_rotate_half(k) * sin)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
