"""Eager against compiled decoder layers: LoRA steps in pairs, same batches, same moment of the host.

Two copies of the bundled model with the same LoRA adapters train side by side in one process: one
eager, one with its decoder layers compiled (`train.compile`). Each pair of optimizer steps runs the
same micro-batch on both, the order alternating, so both steps of a pair see the shared host in the
same state; the figure is the median over pairs of compiled tokens/s over eager tokens/s. The
first pairs (compilation, warm-up) are not counted. This is the measurement behind
`train.compile: auto` (src/tunewise/train/compile.py).

    python bench/compile_ab.py [--full]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import apply_thread_setting, emit, load_average, machine_info, parse_args  # noqa: E402
from _data import write_skewed_chat  # noqa: E402

FULL = {"rows": 2000, "pairs": 12, "max_length": 512, "batch": 8}
QUICK = {"rows": 200, "pairs": 2, "max_length": 128, "batch": 2}
WARM_UP_PAIRS = 2


def _extra(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Base model (bundled name or directory).")
    parser.add_argument("--pairs", type=int, help="Counted pairs of steps.")


def _spec(data: Path, size: dict, model: str, compiled: bool):
    from tunewise.spec import load_spec

    return load_spec(raw={
        "name": "bench-compile", "base_model": model,
        "method": {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.0},
        "data": {"train": str(data), "max_length": size["max_length"], "val_fraction": 0.0, "packing": True},
        "train": {"max_steps": 1000, "micro_batch_size": size["batch"], "learning_rate": 2e-4, "seed": 42,
                  "compile": compiled},
        "eval": {"enabled": False}, "tracking": {"enabled": False}})


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    size = dict(FULL if args.full else QUICK)
    if args.pairs:
        size["pairs"] = args.pairs
    apply_thread_setting()
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix="bench-compile-")
    from tunewise.data import prepare_data
    from tunewise.models import resolve_base_model
    from tunewise.models.load import load_tokenizer
    from tunewise.train.batches import BatchPlan
    from tunewise.train.loop import LoopConfig, _optimizer_step
    from tunewise.train.session import TrainingSession

    data = write_skewed_chat(Path(tempfile.mkdtemp(prefix="bench-compile-data-")) / "chat.jsonl", size["rows"],
                             seed=0, max_tokens=size["max_length"])
    base = resolve_base_model(args.model)
    tokenizer = load_tokenizer(base)
    eager_spec = _spec(data, size, args.model, compiled=False)
    prepared = prepare_data(eager_spec.data, tokenizer, seed=42)
    plan = BatchPlan(prepared.train, micro_batch_size=size["batch"], max_length=size["max_length"], packed=True,
                     seed=42, pad_id=tokenizer.pad_token_id)
    plan.pad_to_max_length()  # as tunewise does when it compiles; both sides get the same tensors
    batches = plan.epoch(0)
    sides = {}
    for name, spec in (("eager", eager_spec), ("compiled", _spec(data, size, args.model, compiled=True))):
        session = TrainingSession(spec, Path(tempfile.mkdtemp(prefix=f"bench-compile-{name}-")))
        model = session.build_model(base)
        model.train()
        sides[name] = (model, *session.optimizer_and_scheduler(model, 1000))
    cfg = LoopConfig(total_steps=1000, gradient_accumulation=1, max_grad_norm=1.0, eval_every_steps=None,
                     device=session.policy.device, head_only_on_labels=True, staging_dir=Path(tempfile.mkdtemp()))
    load_before = load_average()
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for pair in range(WARM_UP_PAIRS + size["pairs"]):
        order = ("eager", "compiled") if pair % 2 == 0 else ("compiled", "eager")
        for name in order:
            model, optimizer, scheduler = sides[name]
            started = time.perf_counter()
            _, _, tokens = _optimizer_step(model, optimizer, scheduler, plan, [batches[pair % len(batches)]], cfg)
            rate = tokens / (time.perf_counter() - started)
            print(f"pair {pair + 1} {name}: {rate:.1f} tokens/s", file=sys.stderr, flush=True)
            if pair >= WARM_UP_PAIRS:
                rates[name].append(rate)
    ratios = [c / e for e, c in zip(rates["eager"], rates["compiled"])]
    emit("compile_ab", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/compile_ab.py" + (" --full" if args.full else ""),
        "size": size, "model": args.model, "machine": machine_info(),
        "eager_tokens_per_s": [round(r, 1) for r in rates["eager"]],
        "compiled_tokens_per_s": [round(r, 1) for r in rates["compiled"]],
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "pairs_compiled_faster": sum(r > 1 for r in ratios),
        "load_average": [load_before, load_average()],
    }, write=args.full)


if __name__ == "__main__":
    main()
