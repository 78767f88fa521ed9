"""One mode's peak memory: a short tunewise training run in a process of its own.

    python bench/_memory_worker.py --mode lora --data FILE --batch 4 --max-length 512 --steps 2

Prints one JSON line: the process's peak RSS (VmHWM) and its RSS before the model loaded (CPU),
or torch's peak allocation (CUDA), next to the planner's estimate for the same setup.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import current_rss_mib, training_device  # noqa: E402


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    from _common import peak_rss_mib

    return peak_rss_mib()


class SteadyPeak:
    """Max RSS once step 1 has been logged: the training peak without the model-load spike
    (loading reads fp32 weights before QLoRA quantizes them, for one)."""

    def __init__(self, metrics: Path, interval_s: float = 0.02):
        import threading

        self.metrics, self.interval_s, self.peak_mib = metrics, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.metrics.exists() and self.metrics.stat().st_size > 0:
                self.peak_mib = max(self.peak_mib, current_rss_mib())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def planner_estimate(model_dir: Path, mode: str, method_cfg, *, seq_len: int, micro_batch: int, device: str,
                     dtype_bytes: int, gradient_checkpointing: bool = False) -> dict | None:
    """tunewise.plan.check_fit's peak for this setup; None when the planner is not installed."""
    try:
        from tunewise.plan import check_fit
    except ImportError:
        return None
    fit = check_fit(model_dir, mode, method_cfg, seq_len=seq_len, micro_batch=micro_batch,
                    gradient_checkpointing=gradient_checkpointing, device=device, dtype_bytes=dtype_bytes,
                    available_bytes=1 << 50)  # plan the asked batch; the worker never shrinks it
    return {"peak_mib": round(fit.peak_bytes / 2**20, 1),
            "breakdown_mib": {k: round(v / 2**20, 1) for k, v in fit.breakdown.items()}}


def _mean_tokens_per_s(rows: list[dict]) -> float | None:
    """Real tokens/s over steps 2..N (step 1 pays for warm-up: allocator growth, kernel selection)."""
    timed = rows[1:] or rows
    return round(sum(r["tokens_per_s"] for r in timed) / len(timed), 1) if timed else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix="bench-memory-")
    import torch

    from tunewise.models import resolve_base_model
    from tunewise.spec import load_spec
    from tunewise.train.metrics_log import MetricsLog
    from tunewise.train.run import run_training_job

    device, dtype = training_device()
    spec = load_spec(raw={
        "name": f"memory-{args.mode}", "base_model": args.model, "method": {"name": args.mode},
        "data": {"train": str(args.data), "max_length": args.max_length, "val_fraction": 0.0},
        "train": {"max_steps": args.steps, "micro_batch_size": args.batch, "seed": 1,
                  "gradient_checkpointing": args.gradient_checkpointing,
                  "memory_limit_gb": 1024},  # measure the asked micro-batch: the planner must not shrink it
        "checkpoint": {"every_steps": 100_000, "keep_best": 0, "keep_last": 1},
        "eval": {"enabled": False}, "tracking": {"enabled": False},
    })
    rss_before_mib = current_rss_mib()  # torch, transformers and tunewise imported; no model yet
    from tunewise.workspace import runs_dir

    steady = SteadyPeak(runs_dir() / spec.name / "metrics.jsonl")
    result = run_training_job(spec, restart=True)
    steady_peak_mib = steady.stop()
    rows = MetricsLog(result.run_dir / "metrics.jsonl").read()
    plan = json.loads((result.run_dir / "batch_plan.json").read_text()) if (result.run_dir / "batch_plan.json").exists() else {}
    measured = {"peak_rss_mib": round(_vm_hwm_mib(), 1), "rss_before_model_mib": round(rss_before_mib, 1),
                "steady_peak_rss_mib": round(steady_peak_mib, 1)}
    if device == "cuda":
        measured["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    estimate = planner_estimate(resolve_base_model(args.model), args.mode, spec.method_config(),
                                seq_len=args.max_length, micro_batch=args.batch, device=device,
                                dtype_bytes=dtype.itemsize, gradient_checkpointing=args.gradient_checkpointing)
    print(json.dumps({"mode": args.mode, "gradient_checkpointing": args.gradient_checkpointing, "device": device,
                      "dtype": str(dtype), "steps": len(rows),
                      "micro_batch": plan.get("micro_batch_size", args.batch), "max_length": args.max_length,
                      "tokens_per_s": _mean_tokens_per_s(rows),
                      "measured": measured, "planner": estimate}))


if __name__ == "__main__":
    main()
