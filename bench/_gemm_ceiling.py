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
from collections.abc import Callable
from typing import Any

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
    logits_grad, logits = torch.randn(head_positions, shape.vocab), torch.empty(head_positions, shape.vocab)
    # The head writes into one reused logits buffer, as the training loss does (train/loss.py).
    for call in (lambda: torch.mm(h, e.t(), out=logits), lambda: torch.mm(logits_grad, e)):
        seconds += _median_seconds(call)
        flops += 2 * head_positions * shape.hidden * shape.vocab
    return {"gflops_per_s": round(flops / seconds / 1e9, 2), "step_gemm_tflop": round(flops / 1e12, 3),
            "step_gemm_seconds": round(seconds, 2)}


def large_gemm_fractions(shape: DecoderShape, *, tokens: int, head_rows: int = 512, rounds: int = 8) -> dict[str, float]:
    """Each large product of a step (base forward and input-gradient per linear, the head's chunk)
    as a fraction of the 2048^3 square matmul timed just before and just after it, median over rounds.

    Timed alternately with the square product, so the host's drift between the two is small: this
    tells whether the step's matmul shapes themselves, not the host, keep MFU below the square rate.
    """
    import torch
    import torch.nn.functional as F

    def seconds(call: Callable[[], Any], repeats: int) -> float:
        call()
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        return (time.perf_counter() - started) / repeats

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    products: dict[str, tuple[Callable[[], Any], float]] = {}
    for n_in, n_out in dict.fromkeys(shape.linears()):
        x, g, w = torch.randn(tokens, n_in), torch.randn(tokens, n_out), torch.randn(n_out, n_in)
        flops = 2 * tokens * n_in * n_out
        products[f"forward {n_in}->{n_out}"] = (lambda x=x, w=w: F.linear(x, w), flops)
        products[f"input-grad {n_in}->{n_out}"] = (lambda g=g, w=w: g @ w, flops)
    h, e, lg = torch.randn(head_rows, shape.hidden), torch.randn(shape.vocab, shape.hidden), torch.randn(head_rows, shape.vocab)
    head_flops = 2 * head_rows * shape.hidden * shape.vocab
    logits = torch.empty(head_rows, shape.vocab)
    products["head forward"] = (lambda: torch.mm(h, e.t(), out=logits), head_flops)
    products["head input-grad"] = (lambda: lg @ e, head_flops)
    fractions: dict[str, list[float]] = {name: [] for name in products}
    square_flops = 2 * 2048**3
    for _ in range(rounds):
        for name, (call, flops) in products.items():
            before = square_flops / seconds(lambda: a @ b, 2)
            rate = flops / seconds(call, 5)
            after = square_flops / seconds(lambda: a @ b, 2)
            fractions[name].append(rate / ((before + after) / 2))
    return {name: round(statistics.median(values), 3) for name, values in fractions.items()}


if __name__ == "__main__":
    # python bench/_gemm_ceiling.py: the bundled model's large products against the square matmul.
    bundled = DecoderShape(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64, vocab=49152)
    for product, fraction in large_gemm_fractions(bundled, tokens=4038).items():
        print(f"{product:28s} {fraction:.0%} of the square matmul")
