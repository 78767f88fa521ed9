"""torch.compile for the decoder layers: an opt-in speed-up (`train.compile: true`).

On CPU a small model's step spends about half its time outside the matmuls, in memory-bound
elementwise work (RMSNorm, rotary embeddings, SiLU, LoRA scaling, residual adds). Compiling each
decoder layer fuses that work; LoRA on the bundled model trained 187 instead of 169 tokens/s after
a compile of about 40 s (bench/throughput.py, BENCHMARKS.md). Attention per packed example stays
eager (its lengths change every batch). Layers are compiled in place, so parameter names,
checkpoints and artifacts are unchanged.
"""

from __future__ import annotations

from typing import Any


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
