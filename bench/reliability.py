"""Reliability: SIGKILL at random points with resume, and the bad-input corpus.

Kill/resume: LoRA on the bundled model (--full: 10 kills over 40 steps; quick: the tiny random
model, 3 kills over 18 steps), each followed by the same command; every checkpoint is verified
after every kill and the final loss is compared with an uninterrupted run. The corpus:
tests/fixtures/bad_inputs/cases.yaml through `python -m tunewise` (the same run as
tests/reliability/test_bad_inputs.py).

    python bench/reliability.py [--full]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load_average, machine_info, parse_args  # noqa: E402

from tests.helpers import write_chat_dataset  # noqa: E402
from tests.reliability.bad_inputs import build_tiny_model, load_cases, run_cases  # noqa: E402
from tests.reliability.kill_resume import kill_and_resume  # noqa: E402

FULL = {"model": "smollm2-135m-instruct", "kills": 10, "steps": 40, "every": 4, "rows": 160, "batch": 2, "max_length": 128}
QUICK = {"model": "tiny", "kills": 3, "steps": 18, "every": 3, "rows": 64, "batch": 4, "max_length": 128}


def _kill_resume(size: dict, work: Path, tiny: Path) -> dict:
    home = work / "home"
    work.mkdir(parents=True)
    data = write_chat_dataset(work / "train.jsonl", rows=size["rows"])
    base_model = str(tiny) if size["model"] == "tiny" else size["model"]
    load = load_average()
    report = kill_and_resume(work, base_model=base_model, data=data, total_steps=size["steps"],
                             every_steps=size["every"], kills=size["kills"], seed=7, max_length=size["max_length"],
                             micro_batch=size["batch"], env={"TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1",
                                                             "PYTHONPATH": str(REPO / "src")})
    summary = report.to_dict()
    summary["corrupt_checkpoints"] = sum(len(k.corrupt) for k in report.kills)
    summary["kills_during_startup"] = sum(1 for k in report.kills if k.after_step == 0)
    summary["load_average"] = load
    return summary


def _corpus(work: Path, tiny: Path) -> dict:
    cases = load_cases()
    work.mkdir(parents=True)
    started, load = time.monotonic(), load_average()
    outcomes = run_cases(cases, tiny, scratch=work)
    failing = [o for o in outcomes if not o.ok]
    return {
        "cases": len(cases), "clear_errors": len(outcomes) - len(failing), "seconds": round(time.monotonic() - started, 1),
        "load_average": load,
        "failing": [{"id": o.case.id, "known_bug": o.case.known_bug, "exit_code": o.exit_code, "problems": o.problems}
                    for o in failing],
        "unexpected_failures": [o.case.id for o in failing if not o.case.known_bug],
        "known_bugs_fixed": [o.case.id for o in outcomes if o.ok and o.case.known_bug],
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size = FULL if args.full else QUICK
    work = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    os.environ.setdefault("TUNEWISE_HOME", str(work / "home"))
    tiny = build_tiny_model(work / "tiny-llama")
    emit("reliability", {
        "mode": "full" if args.full else "quick",
        "command": "python bench/reliability.py" + (" --full" if args.full else ""),
        "size": size, "machine": machine_info(),
        "kill_resume": _kill_resume(size, work / "kill", tiny),
        "bad_inputs": _corpus(work / "corpus", tiny),
    }, write=args.full)


if __name__ == "__main__":
    main()
