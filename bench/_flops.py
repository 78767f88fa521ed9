"""Model FLOPs of one training micro-batch, counted from the shapes of a Llama-style decoder.

What is counted (useful model FLOPs, the usual MFU convention: recomputation and work on padding
or masked attention pairs earn nothing):
- every linear layer: forward 2 x in x out per token; backward input-grad 2 x in x out, plus the
  weight-grad 2 x in x out only when the weight trains (full fine-tuning). With a frozen base this is
  the "about 4N per token"; full fine-tuning is "about 6N". Layer 0's q/k/v input-grad is skipped
  with a frozen base (its input, the frozen embedding, needs no gradient), as autograd skips it.
- LoRA adapters on every linear (all-linear): A (in x r) and B (r x out), forward + both grads.
- attention: QK^T and AV, 4 x heads x head_dim per causal (query, key) pair within an example
  forward, twice that backward. Only pairs inside one example count, whatever the kernel computes.
- the output head (vocab x hidden) only on the positions where it actually runs: the labelled
  positions in tunewise's loop, every real position in the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DecoderShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, config: Any) -> DecoderShape:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                   config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads),
                   head_dim, config.vocab_size)

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of q, k, v, o, gate, up, down in one layer."""
        d, f = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(d, q), (d, kv), (d, kv), (q, d), (d, f), (d, f), (f, d)]

    def linear_params(self) -> int:
        return self.layers * sum(i * o for i, o in self.linears())


def microbatch_flops(shape: DecoderShape, *, tokens: int, head_positions: int, attention_pairs: int,
                     lora_rank: int | None) -> float:
    """FLOPs of one forward+backward over a micro-batch.

    Args:
        tokens: real (non-padding) tokens.
        head_positions: positions the output head is computed at.
        attention_pairs: causal (query, key) pairs within examples, summed (l*(l+1)/2 per example).
        lora_rank: LoRA rank on every linear with a frozen base; None for full fine-tuning.
    """
    per_layer = sum(i * o for i, o in shape.linears())
    first_qkv = sum(i * o for i, o in shape.linears()[:3])
    head = shape.hidden * shape.vocab
    attention = 12 * shape.heads * shape.head_dim * attention_pairs * shape.layers
    if lora_rank is None:
        return 6 * tokens * shape.layers * per_layer + 6 * head_positions * head + attention
    base = 2 * tokens * shape.layers * per_layer + 2 * tokens * (shape.layers * per_layer - first_qkv)
    lora = 6 * lora_rank * tokens * shape.layers * sum(i + o for i, o in shape.linears())
    return base + lora + 4 * head_positions * head + attention


def causal_pairs(lengths: list[int]) -> int:
    return sum(n * (n + 1) // 2 for n in lengths)
