"""torch.compile for the decoder layers (`train.compile`: true, false, or auto, the default).

On CPU a small model's step spends about a fifth of its time outside the matmuls, in memory-bound
elementwise work (RMSNorm, rotary embeddings, SiLU, LoRA scaling, residual adds). Compiling each
decoder layer fuses that work: with eager and compiled LoRA steps alternating on the same batches
of the bundled model, compiled steps were 1.11x faster (median of 12 pairs, faster in 11; `python
bench/compile_ab.py --full`, BENCHMARKS.md), and peak memory falls. Attention per
packed example stays eager (its lengths change every batch). Layers are compiled in place, so
parameter names, checkpoints and artifacts are unchanged.

auto compiles on CPU, with packed data (fixed batch shapes: no recompiles), once this process's
second step shows more than AUTO_COMPILE_AFTER_S of training left: the compile (tens of seconds)
is then paid back many times, while short runs (tests, demos, smoke runs) stay eager.
"""

from __future__ import annotations

from typing import Any

AUTO_COMPILE_AFTER_S = 600.0
AUTO_DECIDE_AT_STEP = 2  # of this process: the first step carries the warm-up


def worth_compiling(steps_left: int, step_seconds: float) -> bool:
    """train.compile: auto's rule: compile when the eager run still has more than AUTO_COMPILE_AFTER_S to go."""
    return steps_left * step_seconds > AUTO_COMPILE_AFTER_S


def compile_if_worth_it(model: Any, plans: tuple, steps_left: int, step_seconds: float) -> str | None:
    """Compile the decoder layers now if `worth_compiling`, and fix the width of the batch plans'
    micro-batches from now on; returns a line saying so, or None."""
    if not worth_compiling(steps_left, step_seconds):
        return None
    fix_batch_width(*plans)
    count = compile_decoder_layers(model)
    return (f"train.compile auto: about {steps_left * step_seconds / 60:.0f} min of training left at "
            f"{step_seconds:.1f} s/step; compiled {count} decoder layers (the next step is slower)")


def fix_batch_width(*plans: Any) -> None:
    """Pad the packed micro-batches of these BatchPlans (None skipped) to max_length: one shape for the
    compiled layers, instead of a compile for every new width."""
    for plan in plans:
        if plan is not None:
            plan.pad_to_max_length()


def compile_decoder_layers(model: Any) -> int:
    """Compile every decoder layer of a (peft-wrapped) transformers causal LM in place; returns how many.

    A layer whose compilation fails (no C++ compiler, an unsupported operation) runs eagerly instead:
    compilation is a speed-up, never a reason for a run to fail.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # process-wide: a failed graph runs eagerly, here and elsewhere
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(getattr(lm, "model", None), "layers", None)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(dynamic=False)
    return len(layers)
