"""Eager against compiled decoder layers: LoRA steps in pairs, same batches, same moment of the host.

Two copies of the bundled model with the same LoRA adapters train side by side in one process
(bench/_paired.py): one eager, one with its decoder layers compiled (`train.compile`). The figure is
the median over pairs of compiled tokens/s over eager tokens/s. This is the measurement behind
`train.compile: auto` (src/tunewise/train/compile.py).

    python bench/compile_ab.py [--full]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import apply_thread_setting, emit, load_average, parse_args  # noqa: E402
from _paired import FULL, QUICK, PairedBench, paired_result  # noqa: E402


def _extra(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Base model (bundled name or directory).")
    parser.add_argument("--pairs", type=int, help="Counted pairs of steps.")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    size = dict(FULL if args.full else QUICK, **({"pairs": args.pairs} if args.pairs else {}))
    apply_thread_setting()
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix="bench-compile-")
    bench = PairedBench(size, args.model, "bench-compile")
    sides = {"eager": bench.side(compiled=False), "compiled": bench.side(compiled=True)}
    load_before = load_average()
    rates = bench.run(sides)
    emit("compile_ab", paired_result(bench, rates, new="compiled", old="eager", command="python bench/compile_ab.py",
                                     full=args.full, load_before=load_before), write=args.full)


if __name__ == "__main__":
    main()
