"""The tunewise side of the throughput benchmark: one LoRA SFT run through `run_training_job`.

The same data and hyperparameters as the baseline (r=16 all-linear, alpha 32, dropout 0 unless
--lora-dropout, lr 2e-4 cosine, batch 8, max length 512), tunewise's defaults otherwise (packing,
loss on the answers only, MLflow tracking on); the evaluation after training is off (not timed,
and minutes long). Per-step times come from the run's metrics.jsonl; each step's composition (real tokens,
labelled positions, attention pairs) is rebuilt from the same deterministic BatchPlan.

    python bench/_tunewise_sft.py --data FILE --steps N --out RESULT.json [--max-length 512] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (StepProbes, apply_thread_setting, load_average, peak_around, peak_rss_mib,  # noqa: E402
                     side_parser, training_device)
from _flops import causal_pairs  # noqa: E402


def _args() -> argparse.Namespace:
    parser = side_parser(__doc__.splitlines()[0])
    parser.add_argument("--method", default="lora")
    parser.add_argument("--packing", choices=("on", "off"), default="on")
    parser.add_argument("--tracking", choices=("on", "off"), default="on", help="MLflow tracking (default on).")
    parser.add_argument("--compile", choices=("on", "off"), default="off", help="train.compile (default off).")
    return parser.parse_args()


def bench_spec(args: argparse.Namespace) -> dict:
    return {
        "name": "bench-throughput",
        "base_model": args.model,
        "method": {"name": args.method, "r": 16, "alpha": 32, "dropout": args.lora_dropout},
        "data": {"train": str(args.data), "max_length": args.max_length, "val_fraction": 0.0,
                 "packing": args.packing == "on"},
        "train": {"max_steps": args.steps, "micro_batch_size": args.batch, "learning_rate": 2e-4,
                  "lr_scheduler": "cosine", "warmup_ratio": 0.03, "seed": 42,
                  "compile": args.compile == "on"},
        "checkpoint": {"every_steps": 100_000, "keep_best": 0, "keep_last": 1},
        "eval": {"enabled": False},
        "tracking": {"enabled": args.tracking == "on"},
    }


def step_composition(spec, steps: int, micro_batch: int, accumulation: int) -> list[dict]:
    """Real tokens, labelled positions and attention pairs of each optimizer step, as the loop saw them."""
    from tunewise.data import prepare_data
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer
    from tunewise.train.batches import BatchPlan

    tokenizer = load_tokenizer(resolve_base_model(spec.base_model))
    prepared = prepare_data(spec.data, tokenizer, seed=spec.train.seed)
    plan = BatchPlan(prepared.train, micro_batch_size=micro_batch, max_length=spec.data.max_length,
                     packed=spec.data.packing, seed=spec.train.seed, pad_id=tokenizer.pad_token_id)
    stream = (indices for epoch in range(10_000) for indices in plan.epoch(epoch))
    out = []
    for _ in range(steps):
        items = [plan.items[i] for _ in range(accumulation) for i in next(stream)]
        widths = [len(item["input_ids"]) for item in items]
        lengths = [n for item in items for n in _example_lengths(item)]
        out.append({"tokens": sum(widths),
                    "padded_tokens": sum(max(widths[i : i + micro_batch]) * len(widths[i : i + micro_batch])
                                         for i in range(0, len(widths), micro_batch)),
                    "head_positions": sum(sum(1 for label in item["labels"][1:] if label != -100) for item in items),
                    "attention_pairs": causal_pairs(lengths), "examples": len(lengths)})
    return out


def _batch_plan(run_dir: Path) -> dict | None:
    """The memory planner's micro-batch decision (it shrinks the micro-batch when memory is short)."""
    path = run_dir / "batch_plan.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _example_lengths(item: dict) -> list[int]:
    """Lengths of the examples in a (possibly packed) sequence: position ids restart at each one."""
    positions = item.get("position_ids")
    if positions is None:
        return [len(item["input_ids"])]
    starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
    return [b - a for a, b in zip(starts, starts[1:])]


def _instrument_steps(metrics_log_class, probes: StepProbes) -> None:
    """Bench-only instrumentation of every step's metrics row: this process's CPU seconds (on a shared
    machine CPU time at one thread is a steadier measure than wall time) and the probe seconds so far;
    then a matmul probe, between this step and the next."""
    append = metrics_log_class.append

    def append_and_probe(self, record):
        append(self, {**record, "cpu_s": time.process_time(), **probes.spent()})
        probes.sample()

    metrics_log_class.append = append_and_probe


def main() -> None:
    args = _args()
    apply_thread_setting()
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix="bench-tunewise-")
    import torch

    from tunewise.spec import load_spec
    from tunewise.train.allocator import active_allocator
    from tunewise.train.metrics_log import MetricsLog
    from tunewise.train.run import run_training_job

    device, dtype = training_device()
    probes = StepProbes(device, dtype)
    _instrument_steps(MetricsLog, probes)
    spec = load_spec(raw=bench_spec(args))
    load_before = load_average()
    result, peak = peak_around(lambda: run_training_job(spec, restart=True), device, dtype)
    load_after = load_average()
    records = MetricsLog(result.run_dir / "metrics.jsonl").read()
    batch_plan = _batch_plan(result.run_dir) or {"micro_batch_size": args.batch, "gradient_accumulation": 1}
    composition = step_composition(spec, args.steps, batch_plan["micro_batch_size"], batch_plan["gradient_accumulation"])
    steps = [{"step": r["step"], "end_s": r["time"], "cpu_s": r["cpu_s"], "probe_s": r["probe_s"],
              "probe_cpu_s": r["probe_cpu_s"], "step_tokens_per_s": r["tokens_per_s"], **c}
             for r, c in zip(records, composition)]
    out = {"side": "tunewise", "device": device, "dtype": str(dtype), "matmul_peak_flops": peak,
           "matmul_probes": probes.samples, "steps": steps,
           "threads": torch.get_num_threads(),
           "load_average": [load_before, load_after], "peak_rss_mib": round(peak_rss_mib(), 1),
           "method": args.method, "packing": args.packing == "on", "batch_plan": batch_plan,
           "allocator": active_allocator()}
    args.out.write_text(json.dumps(out))
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
