"""Training throughput: tunewise LoRA SFT against a plain TRL script on skewed chat data.

Both sides train the bundled model on the same generated file with the same hyperparameters, one
after the other, each in its own process (model load, tokenization and the first step are
excluded: the clock runs from the end of step 1 to the end of the last step). Reported: real
(non-padding) tokens/s of each, their ratio, and model FLOPs utilization against the matmul
rate each process measured between its own steps (bench/_common.py StepProbes; the probes' time is
taken off the clock).

On a shared host the machine's speed drifts over minutes, so a full run repeats the three sides in
rounds (3 by default), rotating which side goes first: each round's ratio compares sides run minutes
apart, and the report gives the median round of each side and the median of the rounds' ratios.

    python bench/throughput.py [--full] [--rounds N]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (REPO, apply_thread_setting, emit, in_run_rate, load_average, machine_info,  # noqa: E402
                     parse_args, peak_around, run_json, training_device)
from _data import write_skewed_chat  # noqa: E402
from _flops import DecoderShape, causal_pairs, microbatch_flops  # noqa: E402
from _gemm_ceiling import lora_step_ceiling  # noqa: E402

from tunewise.train.allocator import preload_environment, system_environment  # noqa: E402

FULL = {"rows": 2000, "steps": 5, "max_length": 512, "batch": 8}
QUICK = {"rows": 200, "steps": 3, "max_length": 128, "batch": 2}
LORA_RANK = 16


def _extra(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Base model (bundled name or directory).")
    parser.add_argument("--steps", type=int, help="Optimizer steps per side (the first is warm-up).")
    parser.add_argument("--threads", type=int, help="torch threads in both sides (default: torch's choice).")
    parser.add_argument("--skip-baseline", action="store_true", help="Only the tunewise side (profiling).")
    parser.add_argument("--rounds", type=int, help="Rounds of all sides (default: 3 with --full, else 1).")
    parser.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout on both sides (peft's default 0).")
    parser.add_argument("--baseline-gc", choices=("default", "on", "off"), default="default",
                        help="Baseline gradient checkpointing: TRL's default (on), or forced.")


def summarize(side: dict, shape: DecoderShape) -> dict:
    """Tokens/s and MFU over steps 2..N (step 1 is warm-up)."""
    steps = side["steps"]
    measured = steps[1:]
    # The matmul probes between steps are on the clock's readings; their own seconds come off.
    seconds = (steps[-1]["end_s"] - steps[-1]["probe_s"]) - (steps[0]["end_s"] - steps[0]["probe_s"])
    cpu_seconds = (steps[-1]["cpu_s"] - steps[-1]["probe_cpu_s"]) - (steps[0]["cpu_s"] - steps[0]["probe_cpu_s"])
    peak = in_run_rate(side["matmul_probes"])
    around = side["matmul_peak_flops"]  # the probes just before and just after training, the higher
    tokens = sum(s["tokens"] for s in measured)
    flops = 0.0
    for s in measured:
        pairs = s.get("attention_pairs")
        if pairs is None:
            pairs = causal_pairs(s["rows"])
        flops += microbatch_flops(shape, tokens=s["tokens"], head_positions=s["head_positions"],
                                  attention_pairs=pairs, lora_rank=LORA_RANK)
    padded = sum(s["padded_tokens"] for s in measured)
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "measured_steps": len(measured),
        "measured_tokens": tokens,
        "seconds": round(seconds, 1),
        "padding_fraction": round(1 - tokens / padded, 3),
        "model_gflops_per_s": round(flops / seconds / 1e9, 2),
        "mflops_per_token": round(flops / tokens / 1e6, 1),
        "matmul_peak_gflops_per_s": round(peak["wall"] / 1e9, 2),
        "mfu": round(flops / seconds / peak["wall"], 3),
        "matmul_probes_gflops_per_s": peak["probes"],
        "matmul_best_call_gflops_per_s": round(peak["best"] / 1e9, 2),
        "mfu_vs_best_call": round(flops / seconds / peak["best"], 3),
        "matmul_around_gflops_per_s": round(around["wall"] / 1e9, 2),
        "mfu_vs_around": round(flops / seconds / around["wall"], 3),
        "threads": side["threads"],
        # CPU-time figures: steadier than wall time on a shared machine, meaningful at one thread.
        "tokens_per_cpu_s": round(tokens * side["threads"] / cpu_seconds, 1),
        "mfu_cpu_time": round(flops / (cpu_seconds / side["threads"]) / peak["cpu"], 3),
        "load_average": side["load_average"],
        "peak_rss_mib": side["peak_rss_mib"],
        "allocator": side.get("allocator", "system"),
    }


def _ceiling(side: dict, shape: DecoderShape, summary: dict) -> dict:
    """The step's own GEMMs timed alone (bench/_gemm_ceiling.py), at tunewise's mean micro-batch."""
    apply_thread_setting()
    measured = side["steps"][1:]
    tokens = round(sum(s["tokens"] for s in measured) / len(measured))
    head = round(sum(s["head_positions"] for s in measured) / len(measured))
    # The square-matmul rate again, here and now: the host's speed drifts between processes.
    ceiling, square = peak_around(lambda: lora_step_ceiling(shape, tokens=tokens, head_positions=head,
                                                            lora_rank=LORA_RANK), *training_device())
    peak = square["wall"] / 1e9
    return {**ceiling, "tokens": tokens, "head_positions": head, "square_matmul_gflops_per_s": round(peak, 2),
            "fraction_of_peak": round(ceiling["gflops_per_s"] / peak, 3),
            # MFU over the ceiling's share of the square rate: each against the rate beside it.
            "tunewise_fraction_of_ceiling": round(summary["mfu"] * peak / ceiling["gflops_per_s"], 3)}


def _shape(model: str) -> DecoderShape:
    from transformers import AutoConfig

    from tunewise.models import resolve_base_model

    return DecoderShape.from_config(AutoConfig.from_pretrained(str(resolve_base_model(model))))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    size = dict(FULL if args.full else QUICK)
    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)
    if args.steps:
        size["steps"] = args.steps
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    data = write_skewed_chat(work / "skewed_chat.jsonl", size["rows"], seed=0, max_tokens=size["max_length"])
    common = ["--data", str(data), "--model", args.model, "--steps", str(size["steps"]),
              "--batch", str(size["batch"]), "--max-length", str(size["max_length"]), "--lora-dropout", str(args.lora_dropout)]
    names = [name for name in SIDES if not (args.skip_baseline and name == "baseline")]
    shape = _shape(args.model)
    rounds = []
    for number in range(args.rounds or (3 if args.full else 1)):
        first = number % len(names)  # rotate: no side always runs first, or always after the same one
        raw = {name: _run_side(name, args, common, work / f"round{number}-{name}.json")
               for name in names[first:] + names[:first]}
        rounds.append({"raw": raw, "summary": {name: summarize(side, shape) for name, side in raw.items()}})
    result = {
        "mode": "full" if args.full else "quick",
        "command": "python bench/throughput.py" + (" --full" if args.full else "")
                   + (f" --rounds {args.rounds}" if args.rounds else ""),
        "size": size, "model": args.model, "lora_dropout": args.lora_dropout, "machine": machine_info(),
        "tunewise_batch_plan": rounds[0]["raw"]["tunewise"].get("batch_plan"),
        "baseline_gradient_checkpointing": rounds[0]["raw"].get("baseline", {}).get("gradient_checkpointing"),
    }
    medians = {name: _median_round(rounds, name) for name in names}
    result.update({name: rounds[i]["summary"][name] for name, i in medians.items()})
    result["rounds"] = [_round_figures(r["summary"]) for r in rounds]
    if "baseline" in names:
        for key in ("ratio", "ratio_cpu_time", "ratio_compiled"):
            result[key] = round(statistics.median(r[key] for r in result["rounds"]), 2)
    result["gemm_ceiling"] = _ceiling(rounds[medians["tunewise"]]["raw"]["tunewise"], shape, result["tunewise"])
    result["load_average_end"] = load_average()
    emit("throughput", result, write=args.full)
    if args.full:
        for r in rounds:
            append_history(r["summary"])


FIGURE_KEYS = ("tokens_per_s", "mfu", "matmul_peak_gflops_per_s")  # per side, in each round and the history
SIDES = {"baseline": ("_baseline_trl.py", []), "tunewise": ("_tunewise_sft.py", ["--compile", "off"]),
         "tunewise_compiled": ("_tunewise_sft.py", ["--compile", "on"])}


def _run_side(name: str, args, common: list[str], out: Path) -> dict:
    script, extra = SIDES[name]
    if name == "baseline":
        extra = ["--gradient-checkpointing", args.baseline_gc]
    # The tunewise sides run under the allocator `tunewise train` gives a CPU run (mimalloc where it
    # can); the baseline, a plain script, under the system's.
    env = system_environment()
    env = env if name == "baseline" else preload_environment(env) or env
    run_json([sys.executable, str(REPO / "bench" / script), *common, *extra, "--out", str(out)], env=env)
    return json.loads(out.read_text())


def _median_round(rounds: list[dict], name: str) -> int:
    """Index of the round whose tokens/s for `name` is the median (the lower middle one of an even count)."""
    order = sorted(range(len(rounds)), key=lambda i: rounds[i]["summary"][name]["tokens_per_s"])
    return order[(len(order) - 1) // 2]


def _round_figures(summary: dict) -> dict:
    """Tokens/s and MFU of each side in one round, and the round's ratios against the baseline."""
    figures = {name: {key: s[key] for key in FIGURE_KEYS} for name, s in summary.items()}
    if "baseline" in summary:
        base = summary["baseline"]
        figures["ratio"] = round(summary["tunewise"]["tokens_per_s"] / base["tokens_per_s"], 2)
        figures["ratio_cpu_time"] = round(summary["tunewise"]["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 2)
        figures["ratio_compiled"] = round(summary["tunewise_compiled"]["tokens_per_s"] / base["tokens_per_s"], 2)
    return figures


HISTORY = REPO / "bench" / "results" / "throughput_history.jsonl"


def append_history(summary: dict) -> None:
    """One line per round of a full run: on a shared host each is a sample, and BENCHMARKS.md shows them all."""
    import time

    sides = {name: {key: summary[name][key] for key in FIGURE_KEYS}
             for name in ("tunewise", "tunewise_compiled", "baseline") if name in summary}
    line = {"when": time.strftime("%Y-%m-%d %H:%M"), "rate": "between steps", **sides}
    with HISTORY.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
