"""Eager against compiled decoder layers: LoRA steps in pairs, same batches, same moment of the host.

Two copies of the bundled model with the same LoRA adapters train side by side in one process
(bench/_paired.py): one eager, one with its decoder layers compiled (`train.compile`). The figure is
the median over pairs of compiled tokens/s over eager tokens/s. This is the measurement behind
`train.compile: auto` (src/tunewise/train/compile.py).

    python bench/compile_ab.py [--full]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load_average  # noqa: E402
from _paired import paired_result, start  # noqa: E402


def main() -> None:
    args, bench = start(__doc__.splitlines()[0], "bench-compile")
    sides = {"eager": bench.side(compiled=False), "compiled": bench.side(compiled=True)}
    load_before = load_average()
    rates = bench.run(sides)
    emit("compile_ab", paired_result(bench, rates, new="compiled", old="eager", command="python bench/compile_ab.py",
                                     full=args.full, load_before=load_before), write=args.full)


if __name__ == "__main__":
    main()
