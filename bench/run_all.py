"""Run every benchmark, then rewrite BENCHMARKS.md from their results.

    python bench/run_all.py --full        # the figures (over an hour on a 2-core CPU)
    python bench/run_all.py               # quick smoke runs; BENCHMARKS.md is left alone
    python bench/run_all.py --render      # only rewrite BENCHMARKS.md from bench/results/
    python bench/run_all.py --full --only throughput,memory
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, load_average  # noqa: E402
from _report import SECTIONS, render  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Full size, and rewrite BENCHMARKS.md.")
    parser.add_argument("--render", action="store_true", help="Only rewrite BENCHMARKS.md from bench/results/.")
    parser.add_argument("--only", help="Comma-separated subset of: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(names) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    if not args.render:
        for name in names:
            cmd = [sys.executable, str(REPO / "bench" / f"{name}.py")] + (["--full"] if args.full else [])
            print(f"== {' '.join(cmd[1:])}  (load average {load_average()})", flush=True)
            started = time.monotonic()
            if subprocess.run(cmd, cwd=REPO).returncode != 0:
                failed.append(name)
            print(f"== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if args.full or args.render:
        (REPO / "BENCHMARKS.md").write_text(render())
        print(f"wrote {REPO / 'BENCHMARKS.md'}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
