"""glibc malloc against mimalloc for CPU training: whole training processes in pairs, order alternating.

An allocator is chosen when a process starts, so the pairs here are processes, not steps: each pair
runs the throughput benchmark's tunewise side (LoRA r=16 on the bundled model, compiled decoder
layers, packed 8 x 512 micro-batches) once under glibc's malloc and once with mimalloc preloaded as
`tunewise train` preloads it on CPU (src/tunewise/train/allocator.py). The figure is the median over
pairs of mimalloc tokens/s over glibc tokens/s; each side's MFU is against its own matmul probes.

    python bench/allocator_ab.py [--full]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args, run_json  # noqa: E402
from _data import write_skewed_chat  # noqa: E402
from throughput import summarize, _shape  # noqa: E402

from tunewise.train.allocator import preload_environment, system_environment  # noqa: E402

FULL = {"rows": 2000, "pairs": 6, "steps": 5, "max_length": 512, "batch": 8, "compile": "on"}
QUICK = {"rows": 100, "pairs": 1, "steps": 2, "max_length": 128, "batch": 2, "compile": "off"}
KEYS = ("tokens_per_s", "mfu", "matmul_peak_gflops_per_s", "peak_rss_mib")


def _environments() -> dict[str, dict[str, str]]:
    system = system_environment()
    preloaded = preload_environment(system)
    if preloaded is None:
        sys.exit("mimalloc is not available here (Linux and the cmeel-mimalloc package are needed)")
    return {"glibc": system, "mimalloc": preloaded}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size = FULL if args.full else QUICK
    environments = _environments()
    work = Path(tempfile.mkdtemp(prefix="bench-allocator-"))
    data = write_skewed_chat(work / "chat.jsonl", size["rows"], seed=0, max_tokens=size["max_length"])
    shape = _shape("smollm2-135m-instruct")
    load_before = load_average()
    sides: dict[str, list[dict]] = {"glibc": [], "mimalloc": []}
    for number in range(size["pairs"]):
        order = ["glibc", "mimalloc"] if number % 2 == 0 else ["mimalloc", "glibc"]
        for name in order:
            out = work / f"pair{number}-{name}.json"
            run_json([sys.executable, str(REPO / "bench" / "_tunewise_sft.py"), "--data", str(data),
                      "--steps", str(size["steps"]), "--batch", str(size["batch"]),
                      "--max-length", str(size["max_length"]), "--compile", size["compile"], "--out", str(out)],
                     env=environments[name])
            summary = summarize(json.loads(out.read_text()), shape)
            sides[name].append({key: summary[key] for key in KEYS})
            print(f"pair {number} {name}: {summary['tokens_per_s']} tokens/s, MFU {summary['mfu']}", flush=True)
    ratios = [m["tokens_per_s"] / g["tokens_per_s"] for g, m in zip(sides["glibc"], sides["mimalloc"])]
    emit("allocator_ab", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/allocator_ab.py" + (" --full" if args.full else ""),
        "size": size, "model": "smollm2-135m-instruct", "machine": machine_info(), **sides,
        "ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3),
        "pairs_mimalloc_faster": sum(r > 1 for r in ratios),
        "load_average": [load_before, load_average()],
    }, write=args.full)


if __name__ == "__main__":
    main()
