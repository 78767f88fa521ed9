"""The matmul ceiling of one LoRA step: its own GEMM shapes, timed alone, back to back.

MFU divides by the best FLOP/s of one large square matmul, which the skinny shapes of a small
model's step (576-wide layers, rank-16 adapters) cannot reach even with nothing else running. Timing
the step's GEMMs alone, in the layouts the forward and backward use, gives the FLOP/s the step
could reach if attention, norms, activations and the optimizer were free: the part of the gap to
MFU 100% that no training loop can close with the same BLAS.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from _flops import DecoderShape


def _median_seconds(call: Callable[[], Any], repeats: int = 5) -> float:
    """The median call: the same statistic as the MFU denominator (bench/_common.py matmul_peak_flops)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def lora_step_ceiling(shape: DecoderShape, *, tokens: int, head_positions: int, lora_rank: int) -> dict[str, float]:
    """FLOP/s of a LoRA step's matmuls (frozen base, adapters on every linear, output head) run alone.

    Per linear (in -> out) and layer: the base forward x @ W.T and input-gradient g @ W; the adapter's
    two forward products, its two weight gradients and two input-gradients. Layer 0's q/k/v
    input-gradient is left out, as autograd leaves it out. The head: forward and input-gradient at
    the labelled positions. fp32 on CPU.
    """
    import torch
    import torch.nn.functional as F

    t, r = tokens, lora_rank
    flops = seconds = 0.0
    for index, (n_in, n_out) in enumerate(shape.linears()):
        x, g = torch.randn(t, n_in), torch.randn(t, n_out)
        w, a, b = torch.randn(n_out, n_in), torch.randn(r, n_in), torch.randn(n_out, r)
        xa, ga = torch.randn(t, r), torch.randn(t, r)
        frozen_input_layers = shape.layers - 1 if index < 3 else shape.layers  # layer 0's q/k/v: no input-grad
        calls = [
            (lambda: F.linear(x, w), 2 * t * n_in * n_out, shape.layers),
            (lambda: torch.mm(g, w), 2 * t * n_in * n_out, frozen_input_layers),
            (lambda: F.linear(x, a), 2 * t * n_in * r, shape.layers),
            (lambda: F.linear(xa, b), 2 * t * r * n_out, shape.layers),
            (lambda: torch.mm(g, b), 2 * t * r * n_out, shape.layers),
            (lambda: torch.mm(g.t(), xa), 2 * t * r * n_out, shape.layers),
            (lambda: torch.mm(ga.t(), x), 2 * t * n_in * r, shape.layers),
            (lambda: torch.mm(ga, a), 2 * t * n_in * r, frozen_input_layers),
        ]
        for call, call_flops, count in calls:
            seconds += _median_seconds(call) * count
            flops += call_flops * count
    h, e = torch.randn(head_positions, shape.hidden), torch.randn(shape.vocab, shape.hidden)
    logits_grad = torch.randn(head_positions, shape.vocab)
    for call in (lambda: F.linear(h, e), lambda: torch.mm(logits_grad, e)):
        seconds += _median_seconds(call)
        flops += 2 * head_positions * shape.hidden * shape.vocab
    return {"gflops_per_s": round(flops / seconds / 1e9, 2), "step_gemm_tflop": round(flops / 1e12, 3),
            "step_gemm_seconds": round(seconds, 2)}
