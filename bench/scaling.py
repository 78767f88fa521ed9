"""Scaling: one training process against two, through `tunewise train` (resources.nproc_per_node).

Three sides train the same global batch (2 micro-batches a step) of the same data for the same steps:
- 1 process, 1 thread: the unit of work;
- 1 process, 2 threads: what one process does with this machine's 2 cores;
- 2 processes, 1 thread each: DDP (LoRA) or FSDP2 (full fine-tuning) over gloo, one micro-batch each.
Efficiency = tokens/s of 2 processes / (2 x tokens/s of 1 process, 1 thread): the share of a perfect
doubling. Sides alternate within each round; tokens/s is the median over steps 3..N (the first steps
warm up). --full: the bundled model (SmolLM2-135M), LoRA and full fine-tuning; quick: the tiny
random model, LoRA only.

    python bench/scaling.py [--full]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args  # noqa: E402
from _data import write_skewed_chat  # noqa: E402

FULL = {"model": "smollm2-135m-instruct", "methods": ["lora", "full"], "steps": 8, "micro_batch": 2,
        "max_length": 256, "rows": 300, "rounds": 2}
QUICK = {"model": "tiny", "methods": ["lora"], "steps": 6, "micro_batch": 2, "max_length": 128, "rows": 80,
         "rounds": 1}
SIDES = {"1 process x 1 thread": (1, 1), "1 process x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1)}


def _spec(path: Path, *, name: str, size: dict, method: str, data: Path, model: str, processes: int) -> Path:
    raw = {
        "name": name, "base_model": model, "method": {"name": method},
        "data": {"train": str(data), "max_length": size["max_length"], "val_fraction": 0.02},
        "train": {"max_steps": size["steps"], "micro_batch_size": size["micro_batch"],
                  "gradient_accumulation": 2 // processes, "precision": "fp32", "device": "cpu", "compile": False,
                  "learning_rate": 1e-4 if method == "lora" else 1e-5},
        "checkpoint": {"every_steps": 10_000},  # the last step only: the figure is training, not saving
        "eval": {"enabled": False}, "tracking": {"enabled": False},
        "resources": {"nproc_per_node": processes},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _run_side(work: Path, size: dict, method: str, data: Path, model: str, side: str, round_: int) -> dict:
    processes, threads = SIDES[side]
    name = f"{method}-{processes}p{threads}t-{round_}"
    spec = _spec(work / f"{name}.yaml", name=name, size=size, method=method, data=data, model=model,
                 processes=processes)
    env = {**os.environ, "TUNEWISE_HOME": str(work / "home"), "PYTHONPATH": str(REPO / "src"),
           "OMP_NUM_THREADS": str(threads)}
    load, started = load_average(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tunewise", "train", str(spec)], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} ({method}) failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (work / "home" / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows[2:]] or [r["tokens_per_s"] for r in rows]
    return {"tokens_per_s": round(statistics.median(rates), 1), "final_train_loss": rows[-1]["train_loss"],
            "peak_rss_mib_rank0": rows[-1]["peak_memory_mb"], "wall_s": round(time.monotonic() - started, 1),
            "load_average": load}


def _method(work: Path, size: dict, method: str, data: Path, model: str) -> dict:
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for round_ in range(size["rounds"]):
        order = list(SIDES) if round_ % 2 == 0 else list(reversed(SIDES))
        for side in order:
            runs[side].append(_run_side(work, size, method, data, model, side, round_))
            print(f"{method} round {round_}: {side}: {runs[side][-1]['tokens_per_s']} tokens/s", file=sys.stderr)
    sides = {side: {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in got), "runs": got}
             for side, got in runs.items()}
    unit = sides["1 process x 1 thread"]["tokens_per_s"]
    two = sides["2 processes x 1 thread"]["tokens_per_s"]
    threaded = sides["1 process x 2 threads"]["tokens_per_s"]
    return {"sides": sides, "efficiency": round(two / (2 * unit), 3), "two_processes_vs_two_threads":
            round(two / threaded, 3), "strategy": "ddp" if method == "lora" else "fsdp-zero2"}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size = FULL if args.full else QUICK
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    data = write_skewed_chat(work / "train.jsonl", size["rows"], max_tokens=size["max_length"])
    if size["model"] == "tiny":
        from tests.reliability.bad_inputs import build_tiny_model

        model = str(build_tiny_model(work / "tiny-llama"))
    else:
        model = size["model"]
    emit("scaling", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/scaling.py" + (" --full" if args.full else ""),
        "size": size, "machine": machine_info(),
        "methods": {method: _method(work, size, method, data, model) for method in size["methods"]},
    }, write=args.full)


if __name__ == "__main__":
    main()
