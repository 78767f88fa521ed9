"""Per-example attention in one-thread workers against one example after another: paired LoRA steps.

One copy of the bundled model trains (bench/_paired.py); before each step, packed attention is
switched between running whole examples side by side in one-thread kernel workers (tunewise's
default, src/tunewise/train/kernel_threads.py) and running them one after another, each kernel on
torch's intra-op threads. The figure is the median over pairs of the workers' tokens/s over the
other's.

    python bench/attention_ab.py [--full] [--compile]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load_average  # noqa: E402
from _paired import paired_result, start  # noqa: E402


def _compile_flag(parser) -> None:
    parser.add_argument("--compile", action="store_true", help="Compile the decoder layers (train.compile: true).")


def _attention_in_workers(on: bool):
    def switch() -> None:
        from tunewise.train import packed_attention

        packed_attention.EXAMPLES_IN_WORKERS = on
    return switch


def main() -> None:
    args, bench = start(__doc__.splitlines()[0], "bench-attention", _compile_flag)
    side = bench.side(compiled=args.compile)
    # One model, switched before each step: both sides train the same weights on the same batches.
    sides = {"one_by_one": replace(side, before_step=_attention_in_workers(False)),
             "workers": replace(side, before_step=_attention_in_workers(True))}
    load_before = load_average()
    rates = bench.run(sides)
    result = paired_result(bench, rates, new="workers", old="one_by_one", full=args.full, load_before=load_before,
                           command="python bench/attention_ab.py" + (" --compile" if args.compile else ""))
    emit("attention_ab_compiled" if args.compile else "attention_ab", dict(result, compiled=args.compile),
         write=args.full)


if __name__ == "__main__":
    main()
