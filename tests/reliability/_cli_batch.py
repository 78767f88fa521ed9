"""Run many `python -m tunewise` commands in one interpreter (torch and the CLI import once).

    python tests/reliability/_cli_batch.py JOBS.json

JOBS.json: [{"argv": [...], "env": {...}, "cwd": "...", "output": "file"}]. Each job runs
`tunewise.cli.main(argv)` -- what `python -m tunewise` runs -- with stdout and stderr (file
descriptors 1 and 2) sent to its output file; an exception that escapes main is printed as Python
would print it (a traceback) with exit code 1. One JSON line per job on the real stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def _run(job: dict) -> dict:
    from tunewise.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    out = os.open(job["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(out, 2)
    started = time.monotonic()
    code = 0
    try:
        main(job["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - exactly what an uncaught exception does to `python -m tunewise`
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in (out, *saved_fds):
            os.close(fd)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return {"exit_code": code, "seconds": round(time.monotonic() - started, 2)}


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    import tunewise.cli  # noqa: F401  (import once, before the first job's clock starts)

    for job in jobs:
        print(json.dumps(_run(job)), flush=True)


if __name__ == "__main__":
    main()
