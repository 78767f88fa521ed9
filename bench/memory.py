"""Peak memory per mode: full, LoRA, QLoRA and DoRA on the bundled model at the same batch.

Each mode trains a few steps through `run_training_job` in its own process. Measured on CPU: the
process's peak RSS (what `top` shows), and its growth over the RSS before the model was loaded
(what training added: weights, gradients, optimizer state, activations). On CUDA: torch's peak
allocation. Both against the planner's estimate (`tunewise.plan.check_fit`) for the same setup.

    python bench/memory.py [--full]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args, run_json  # noqa: E402
from _data import write_skewed_chat  # noqa: E402

MODES = ("full", "lora", "qlora", "dora")
FULL = {"rows": 400, "batch": 4, "max_length": 512, "steps": 3}
QUICK = {"rows": 100, "batch": 2, "max_length": 128, "steps": 2}


def _extra(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--modes", default=",".join(MODES), help="Comma-separated modes.")


def _row(result: dict) -> dict:
    measured, planner = result["measured"], result.get("planner")
    growth = measured["peak_rss_mib"] - measured["rss_before_model_mib"]
    steady = measured["steady_peak_rss_mib"] - measured["rss_before_model_mib"]
    seen = measured.get("peak_allocated_mib") or steady  # CUDA: tensors only; CPU: what training added
    row = {"mode": result["mode"], "micro_batch": result["micro_batch"], "max_length": result["max_length"],
           "peak_rss_mib": measured["peak_rss_mib"], "peak_growth_mib": round(growth, 1),
           "training_growth_mib": round(steady, 1),
           "peak_allocated_mib": measured.get("peak_allocated_mib"), "tokens_per_s": result["tokens_per_s"]}
    if planner:
        row["planner_peak_mib"] = planner["peak_mib"]
        row["planner_vs_measured"] = round(planner["peak_mib"] / seen, 2) if seen else None
        row["planner_breakdown_mib"] = planner["breakdown_mib"]
    return row


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    size = FULL if args.full else QUICK
    data = write_skewed_chat(Path(tempfile.mkdtemp(prefix="bench-memory-")) / "chat.jsonl", size["rows"], seed=1,
                             max_tokens=size["max_length"])
    rows = []
    for mode in args.modes.split(","):
        load = load_average()
        result = run_json([sys.executable, str(REPO / "bench" / "_memory_worker.py"), "--mode", mode,
                           "--data", str(data), "--model", args.model, "--batch", str(size["batch"]),
                           "--max-length", str(size["max_length"]), "--steps", str(size["steps"])])
        rows.append({**_row(result), "load_average": load, "device": result["device"], "dtype": result["dtype"]})
    planner_present = any("planner_peak_mib" in r for r in rows)
    emit("memory", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/memory.py" + (" --full" if args.full else ""),
        "size": size, "model": args.model, "machine": machine_info(), "modes": rows,
        "planner": "tunewise.plan.check_fit" if planner_present else "not installed: measured only",
    }, write=args.full)


if __name__ == "__main__":
    main()
