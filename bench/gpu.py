"""On a CUDA machine: throughput against the TRL baseline, and tokens/s with peak memory per mode.

bf16 weights and compute (tunewise's device policy on CUDA), bitsandbytes 4-bit NF4 for QLoRA,
peak memory from torch.cuda.max_memory_allocated. The models have random weights (speed and
memory depend on shape only), built on the spot from the bundled model's config and tokenizer:
- the bundled SmolLM2-135M shape: tunewise LoRA against the TRL SFTTrainer baseline (as
  bench/throughput.py does on CPU), then full, LoRA, QLoRA and DoRA (as bench/memory.py does);
- the Llama 3.1 8B shape: LoRA and QLoRA, without and with gradient checkpointing (full fine-tuning with AdamW needs about 16 bytes per
  parameter, 120 GiB: the planner's estimate is reported instead), to set beside torchtune's
  published figures for the same model.

    python bench/gpu.py [--full] [--source DIR]

Without CUDA it exits with a message. Results: bench/results/gpu.json (with --full).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, machine_info, matmul_peak_flops, parse_args, run_json  # noqa: E402
from _data import write_skewed_chat  # noqa: E402
from _random_model import write_random_model  # noqa: E402

FULL = {"rows": 2000, "max_length": 512, "batch": 8, "steps": 30, "big_batch": 4, "big_steps": 8}
QUICK = {"rows": 200, "max_length": 256, "batch": 4, "steps": 4, "big_batch": 1, "big_steps": 2}
SMALL_MODES = ("full", "lora", "qlora", "dora")
BIG_MODES = ("lora", "qlora")


def _extra(parser) -> None:
    parser.add_argument("--source", type=Path, help="Config + tokenizer directory (default: the bundled model's).")
    parser.add_argument("--skip-big", action="store_true", help="Skip the Llama 3.1 8B shape.")


def _source(args) -> Path:
    if args.source:
        return args.source
    from tunewise.models import resolve_base_model

    return Path(resolve_base_model("smollm2-135m-instruct"))


def _throughput(model: Path, data: Path, size: dict, work: Path) -> dict:
    from throughput import _shape, summarize

    common = ["--data", str(data), "--model", str(model), "--steps", str(size["steps"]), "--batch", str(size["batch"]),
              "--max-length", str(size["max_length"])]
    sides = {}
    for side, script in (("baseline", "_baseline_trl.py"), ("tunewise", "_tunewise_sft.py")):
        out = work / f"{side}.json"
        extra = ["--tracking", "off"] if side == "tunewise" else []  # mlflow is not installed on the GPU machines
        run_json([sys.executable, str(REPO / "bench" / script), *common, *extra, "--out", str(out)])
        sides[side] = json.loads(out.read_text())
    shape = _shape(str(model))
    result = {name: summarize(side, shape) for name, side in sides.items()}
    result["ratio"] = round(result["tunewise"]["tokens_per_s"] / result["baseline"]["tokens_per_s"], 2)
    return result


def _modes(model: Path, data: Path, modes: tuple[str, ...], *, batch: int, max_length: int, steps: int,
           gradient_checkpointing: bool = False) -> list[dict]:
    from memory import _row

    rows = []
    for mode in modes:
        started = time.monotonic()
        result = run_json([sys.executable, str(REPO / "bench" / "_memory_worker.py"), "--mode", mode, "--data", str(data),
                           "--model", str(model), "--batch", str(batch), "--max-length", str(max_length),
                           "--steps", str(steps)] + (["--gradient-checkpointing"] if gradient_checkpointing else []))
        rows.append({**_row(result), "gradient_checkpointing": gradient_checkpointing,
                     "seconds": round(time.monotonic() - started, 1)})
    return rows


def _planner_only(model: Path, mode: str, *, batch: int, max_length: int) -> dict:
    """The planner's peak for a mode not run (it would not fit the card)."""
    import torch

    from tunewise.methods import get_method
    from tunewise.plan import check_fit

    fit = check_fit(model, mode, get_method(mode).config_class(), seq_len=max_length, micro_batch=batch,
                    gradient_checkpointing=False, device="cuda", dtype_bytes=2,
                    available_bytes=torch.cuda.get_device_properties(0).total_memory)
    return {"mode": mode, "planner_peak_mib": round(fit.peak_bytes / 2**20, 1), "fits": fit.fits,
            "available_mib": round(fit.available_bytes / 2**20, 1), "message": fit.message}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU; this machine has none (the CPU benchmarks are bench/run_all.py)")
    size = FULL if args.full else QUICK
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    source = _source(args)
    data = write_skewed_chat(work / "chat.jsonl", size["rows"], seed=0, max_tokens=size["max_length"])
    small = write_random_model(source, work / "smollm2-135m-random", device="cuda")
    result = {
        "mode": "full" if args.full else "quick",
        "command": "python bench/gpu.py" + (" --full" if args.full else ""),
        "size": size, "machine": machine_info(),
        "bf16_matmul_peak_tflops": round(matmul_peak_flops("cuda", torch.bfloat16)["wall"] / 1e12, 1),
        "throughput": _throughput(small, data, size, work),
        "small_modes": _modes(small, data, SMALL_MODES, batch=size["batch"], max_length=size["max_length"],
                              steps=size["steps"]),
    }
    if not args.skip_big:
        big = write_random_model(source, work / "llama-3.1-8b-random", shape="llama-3.1-8b", device="cuda")
        result["big_modes"] = [row for gc in (False, True)
                               for row in _modes(big, data, BIG_MODES, batch=size["big_batch"],
                                                 max_length=size["max_length"], steps=size["big_steps"],
                                                 gradient_checkpointing=gc)]
        result["big_full_planned"] = _planner_only(big, "full", batch=size["big_batch"], max_length=size["max_length"])
    emit("gpu", result, write=args.full)


if __name__ == "__main__":
    main()
