"""Data pipeline: validation + deduplication throughput and memory on synthetic chat rows.

`tunewise.data.validate_file` over a generated JSONL (2% exact copies, 1% near copies, 0.5% invalid
rows), in a fresh process per variant: rows/s, and the growth of peak RSS over the RSS before the
call, against the file's size (validate_file streams the rows and keeps no records: what grows with
the row count is what deduplication remembers, about 1 KB per kept row, and the token lengths).
Variants: without a tokenizer (validation + dedup), and with the bundled model's tokenizer (adds
templating and token lengths, what `tunewise data validate` does).

    python bench/data_pipeline.py [--full]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, current_rss_mib, emit, load_average, machine_info, parse_args, run_json  # noqa: E402
from _data import write_pipeline_rows  # noqa: E402

FULL_ROWS, QUICK_ROWS = 100_000, 5_000


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _warm_up(folder: Path, tokenizer) -> None:
    from tunewise.data import validate_file

    small = folder / "warm-up.jsonl"
    write_pipeline_rows(small, 50, seed=1)
    validate_file(small, tokenizer=tokenizer, max_length=2048 if tokenizer is not None else None, dedup=True)


def worker(path: Path, tokenize: bool) -> dict:
    """Run in a child: one validate_file call, timed, with its memory growth."""
    from tunewise.data import validate_file

    tokenizer = None
    if tokenize:
        from tunewise.models import resolve_base_model
        from tunewise.models.load import load_tokenizer

        tokenizer = load_tokenizer(resolve_base_model("smollm2-135m-instruct"))
    _warm_up(path.parent, tokenizer)  # the pipeline's lazy imports (numpy, datasketch) are not the file's cost
    before = current_rss_mib()
    started = time.perf_counter()
    report = validate_file(path, tokenizer=tokenizer, max_length=2048 if tokenize else None, dedup=True)
    seconds = time.perf_counter() - started
    peak = _vm_hwm_mib()
    return {"seconds": round(seconds, 2), "rows_read": report.rows_read, "rows_kept": report.rows_kept,
            "exact_duplicates": len(report.exact_duplicates), "near_duplicates": len(report.near_duplicates),
            "errors": len(report.errors), "rss_before_mib": round(before, 1), "peak_rss_mib": round(peak, 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(Path(sys.argv[2]), sys.argv[3] == "tokenize")))
        return
    args = parse_args(__doc__.splitlines()[0])
    rows = FULL_ROWS if args.full else QUICK_ROWS
    path = Path(tempfile.mkdtemp(prefix="bench-data-")) / "rows.jsonl"
    planted = write_pipeline_rows(path, rows, seed=0)
    file_mib = path.stat().st_size / 2**20
    variants = {}
    for name in ("validate_dedup", "validate_dedup_tokenize"):
        load = load_average()
        out = run_json([sys.executable, str(REPO / "bench" / "data_pipeline.py"), "--worker", str(path),
                        "tokenize" if name.endswith("tokenize") else "plain"])
        growth = out["peak_rss_mib"] - out["rss_before_mib"]
        variants[name] = {**out, "rows_per_s": round(out["rows_read"] / out["seconds"], 1),
                          "rss_growth_mib": round(growth, 1), "rss_growth_per_file_mib": round(growth / file_mib, 2),
                          "load_average": load}
    emit("data_pipeline", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/data_pipeline.py" + (" --full" if args.full else ""),
        "rows": rows, "file_mib": round(file_mib, 1), "planted": planted, "machine": machine_info(),
        "variants": variants,
    }, write=args.full)


if __name__ == "__main__":
    main()
