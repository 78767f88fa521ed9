"""One mode's measurement, in a process of its own so its peak memory is its own.

Run by tunewise.plan.measure as `python -m tunewise.plan._measure_worker '<json>'`; prints one JSON
line. A few real steps: forward, backward and AdamW step on random token batches.

How memory is read:
  cuda  torch.cuda.max_memory_allocated() after reset_peak_memory_stats(): tensors only.
  cpu   the growth of the process's peak RSS (VmHWM) over its RSS before the model was loaded. The
        peak is reset (/proc/self/clear_refs) after loading, so a load-time spike is not counted.
        Two things would otherwise make RSS follow the allocator rather than the tensors, and both
        are neutralised: the driver sets MALLOC_MMAP_THRESHOLD_ so tensor buffers come from mmap and
        return to the OS when freed (glibc's heap otherwise keeps freed pages, 10-40% extra here),
        and the weights are copied off the safetensors file mapping, whose pages would otherwise
        stay resident next to the copies QLoRA makes of them.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize()


def _hwm_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run(args: dict) -> dict:
    import torch
    import transformers  # noqa: F401  (imported before the baseline so its memory is not counted)

    from tunewise.methods import get_method
    from tunewise.models.device import resolve_device_policy
    from tunewise.models.load import enable_activation_checkpointing, load_causal_lm

    method = get_method(args["mode"])
    cfg = method.config_class()
    policy = resolve_device_policy(args["device"])
    if method.quantization is not None:
        import bitsandbytes  # noqa: F401
    import peft  # noqa: F401

    torch.manual_seed(0)
    gc.collect()
    baseline = _rss_bytes()
    quant = method.quantization(cfg, policy.dtype) if method.quantization else {}
    model = load_causal_lm(args["model_dir"], policy, **quant)
    if policy.device == "cpu":
        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                tensor.data = tensor.data.clone()  # off the file mapping (see the module docstring)
        gc.collect()
    model.config.use_cache = False
    if args["gradient_checkpointing"]:
        enable_activation_checkpointing(model)
    model = method.build(model, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    vocab = model.get_input_embeddings().weight.shape[0]
    if policy.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        reset = True
    else:
        reset = _reset_hwm()
    times = []
    for _ in range(args["steps"]):
        ids = torch.randint(0, vocab, (args["micro_batch"], args["seq_len"]), device=policy.device)
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss  # the outputs (and their logits) are dropped here
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if policy.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if policy.device == "cuda":
        peak = int(torch.cuda.max_memory_allocated())
    else:
        peak = _hwm_bytes() - baseline
    timed = times[1:] or times  # the first step allocates the optimizer states and warms kernels up
    tokens = args["micro_batch"] * args["seq_len"] * len(timed)
    return {
        "mode": args["mode"],
        "peak_bytes": peak,
        "peak_reset_after_load": reset,
        "tokens_per_s": tokens / sum(timed),
        "step_seconds": times,
        "trainable_params": sum(p.numel() for p in params),
        "device": policy.device,
    }


def main() -> None:
    result = run(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
