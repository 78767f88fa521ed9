"""Paired training steps: two variants of tunewise's LoRA step on the same batches, back to back.

This VM's cores are shared and their speed drifts within seconds, so two variants timed in separate
runs differ by more than most changes do. Here both variants train in one process; every pair runs the
same packed micro-batch once on each, the order alternating, and the figure is the median over pairs
of one's tokens/s over the other's. The first pairs (compilation, warm-up) are not counted.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import load_average, machine_info
from _data import write_skewed_chat

FULL = {"rows": 2000, "pairs": 12, "max_length": 512, "batch": 8}
QUICK = {"rows": 200, "pairs": 2, "max_length": 128, "batch": 2}
WARM_UP_PAIRS = 2


@dataclass
class Side:
    """One variant: its model, optimizer and scheduler, and what to switch before each of its steps."""

    model: Any
    optimizer: Any
    scheduler: Any
    before_step: Callable[[], None] = lambda: None


class PairedBench:
    """The bundled model's data, tokenizer and packed batches (padded to max_length, as a compiled run
    pads them), shared by the variants; `side` builds one, `run` times them."""

    def __init__(self, size: dict, model: str, prefix: str) -> None:
        from tunewise.data import prepare_data
        from tunewise.models import resolve_base_model
        from tunewise.models.load import load_tokenizer
        from tunewise.train.batches import BatchPlan

        self.size, self.model_name, self.prefix = size, model, prefix
        self.data = write_skewed_chat(Path(tempfile.mkdtemp(prefix=f"{prefix}-data-")) / "chat.jsonl",
                                      size["rows"], seed=0, max_tokens=size["max_length"])
        self.base = resolve_base_model(model)
        tokenizer = load_tokenizer(self.base)
        prepared = prepare_data(self.spec(compiled=False).data, tokenizer, seed=42)
        self.plan = BatchPlan(prepared.train, micro_batch_size=size["batch"], max_length=size["max_length"],
                              packed=True, seed=42, pad_id=tokenizer.pad_token_id)
        self.plan.pad_to_max_length()  # one batch shape for both sides, compiled or not
        self.batches = self.plan.epoch(0)
        self.loop_config = None

    def spec(self, *, compiled: bool):
        from tunewise.spec import load_spec

        return load_spec(raw={
            "name": self.prefix, "base_model": self.model_name,
            "method": {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.0},
            "data": {"train": str(self.data), "max_length": self.size["max_length"], "val_fraction": 0.0,
                     "packing": True},
            "train": {"max_steps": 1000, "micro_batch_size": self.size["batch"], "learning_rate": 2e-4,
                      "seed": 42, "compile": compiled},
            "eval": {"enabled": False}, "tracking": {"enabled": False}})

    def side(self, *, compiled: bool, before_step: Callable[[], None] = lambda: None) -> Side:
        from tunewise.train.building_blocks import optimizer_and_scheduler
        from tunewise.train.loop import LoopConfig
        from tunewise.train.session import TrainingSession

        session = TrainingSession(self.spec(compiled=compiled), Path(tempfile.mkdtemp(prefix=f"{self.prefix}-run-")))
        model = session.build_model(self.base)
        model.train()
        self.loop_config = LoopConfig(total_steps=1000, gradient_accumulation=1, max_grad_norm=1.0,
                                      eval_every_steps=None, device=session.policy.device,
                                      head_only_on_labels=True, staging_dir=Path(tempfile.mkdtemp()))
        return Side(model, *optimizer_and_scheduler(session.spec, model, 1000), before_step=before_step)

    def run(self, sides: dict[str, Side]) -> dict[str, list[float]]:
        """Tokens/s of every counted step, per side, in pair order."""
        from tunewise.train.distributed import Ranks
        from tunewise.train.loop import _optimizer_step
        from tunewise.train.parallel import parallelize

        names = list(sides)
        rates: dict[str, list[float]] = {name: [] for name in names}
        for pair in range(WARM_UP_PAIRS + self.size["pairs"]):
            for name in names if pair % 2 == 0 else names[::-1]:
                side = sides[name]
                side.before_step()
                started = time.perf_counter()
                parallel = parallelize(side.model, "single", Ranks(), head_only_on_labels=True)
                tokens = _optimizer_step(parallel, side.optimizer, side.scheduler, self.plan,
                                         [self.batches[pair % len(self.batches)]], self.loop_config).tokens
                rate = tokens / (time.perf_counter() - started)
                print(f"pair {pair + 1} {name}: {rate:.1f} tokens/s", file=sys.stderr, flush=True)
                if pair >= WARM_UP_PAIRS:
                    rates[name].append(rate)
        return rates


def start(description: str, prefix: str, extra: Callable[[Any], None] | None = None) -> tuple[Any, PairedBench]:
    """Parse the arguments every paired benchmark takes (--full, --model, --pairs, plus `extra`),
    set the threads and a scratch TUNEWISE_HOME, and build the shared data and batches."""
    import os

    from _common import apply_thread_setting, parse_args

    def arguments(parser) -> None:
        parser.add_argument("--model", default="smollm2-135m-instruct", help="Base model (bundled name or directory).")
        parser.add_argument("--pairs", type=int, help="Counted pairs of steps.")
        if extra is not None:
            extra(parser)

    args = parse_args(description, arguments)
    size = dict(FULL if args.full else QUICK, **({"pairs": args.pairs} if args.pairs else {}))
    apply_thread_setting()
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix=f"{prefix}-")
    return args, PairedBench(size, args.model, prefix)


def paired_result(bench: PairedBench, rates: dict[str, list[float]], *, new: str, old: str, command: str,
                  full: bool, load_before: float) -> dict[str, Any]:
    """The JSON result: both sides' tokens/s per pair and the median of new/old."""
    ratios = [n / o for o, n in zip(rates[old], rates[new])]
    return {
        "mode": "full" if full else "quick", "command": command + (" --full" if full else ""),
        "size": bench.size, "model": bench.model_name, "machine": machine_info(),
        f"{old}_tokens_per_s": [round(r, 1) for r in rates[old]],
        f"{new}_tokens_per_s": [round(r, 1) for r in rates[new]],
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        f"pairs_{new}_faster": sum(r > 1 for r in ratios),
        "load_average": [load_before, load_average()],
    }
