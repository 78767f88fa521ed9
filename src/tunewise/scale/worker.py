"""One training process of a multi-process job: `python -m tunewise.scale.worker RUN_DIR`.

Started by scale/launch.py through torch's elastic launcher, which sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address. It reads the spec the launcher left in `RUN_DIR/.launch/`,
joins the process group and trains. Rank 0 prints to the launcher's terminal; the others write
`RUN_DIR/logs/rank-<rank>.log`. A user error is handed back as `.launch/rank-<rank>.error.json`,
so the launcher can print it as the job's error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.scale.launch import LAUNCH_DIR, RESULT_FILE
from tunewise.train.stop import TrainingStopped, install_stop_handler


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run_dir = Path(args[0])
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        _write_output_to(run_dir / "logs" / f"rank-{rank}.log")
    install_stop_handler()  # SIGTERM: finish the step, checkpoint it with the other ranks, stop
    try:
        if rank == 0:  # other libraries' logging to the run's run.log, as with one process
            from tunewise.logs import routed, run_log_path

            with routed(run_log_path(run_dir)):
                result = train_in_process_group(run_dir, leave=True)
        else:
            result = train_in_process_group(run_dir, leave=True)
    except TunewiseError as err:
        report_error(run_dir, rank, err)
        return err.exit_code
    if rank == 0:
        report_result(run_dir, result)
    return 0


def report_error(run_dir: Path, rank: int, err: TunewiseError) -> None:
    """Hand a worker's error back to the launcher (`.launch/rank-<rank>.error.json`)."""
    report = {"message": err.message, "hint": err.hint, "exit_code": err.exit_code}
    if isinstance(err, TrainingStopped):
        report["stopped_at"] = err.step
    (run_dir / LAUNCH_DIR / f"rank-{rank}.error.json").write_text(json.dumps(report))
    print(f"error: {err.message}", file=sys.stderr, flush=True)


def report_result(run_dir: Path, result: Any) -> None:
    """Rank 0 hands the steps trained back to the launcher (`.launch/result.json`)."""
    payload = {"steps": result.steps, "resumed_from": result.resumed_from}
    (run_dir / LAUNCH_DIR / RESULT_FILE).write_text(json.dumps(payload))


def train_in_process_group(run_dir: Path, *, leave: bool) -> Any:
    """Join the job's process group (or find it joined: Ray Train sets it up) and train the spec the
    launcher left in `run_dir/.launch/`; `leave`: destroy the group afterwards (not when Ray owns it)."""
    from tunewise.methods import get_method
    from tunewise.models import resolve_device_policy
    from tunewise.spec import JobSpec
    from tunewise.train.distributed import join_process_group, leave_process_group

    spec = JobSpec.model_validate_json((run_dir / LAUNCH_DIR / "spec.json").read_text())
    policy = resolve_device_policy(spec.train.device, spec.train.precision)
    resources = spec.resources
    ranks = join_process_group(resources.backend, policy.device, resources.collective_timeout_s)
    try:
        method = get_method(spec.method.name)
        if method.trainer is None:
            from tunewise.train.session import TrainingSession

            return TrainingSession(spec, run_dir, ranks).run()
        return method.trainer(spec, run_dir)  # TRL's trainers join the process group through accelerate
    finally:
        if leave:
            leave_process_group()


def _write_output_to(path: Path) -> None:
    """Send this process's stdout and stderr (Python's and the C libraries') to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)


if __name__ == "__main__":
    sys.exit(main())
