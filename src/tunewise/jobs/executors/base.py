"""The executor interface: start a job's training, poll it, ask it to stop, kill it, read its log.

A handle is a JSON-serialisable dict an executor returns from `start`; the store keeps it, so a
restarted server finds the job again (`poll` on a handle from an earlier server process works).
What the job did is read from its run directory (status.json), not from the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tunewise.jobs.schedule_types import Placement

Handle = dict[str, Any]


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one attempt of a job."""

    job_id: str
    spec_path: Path  # the job spec (YAML) `tunewise train` runs
    run_dir: Path  # where the attempt writes status.json, metrics, checkpoints
    log_path: Path  # stdout and stderr of every attempt, appended
    placement: Placement  # the devices the scheduler reserved
    env: dict[str, str] = field(default_factory=dict)  # extra environment (TUNEWISE_HOME, ...)


@dataclass(frozen=True)
class Poll:
    """What an attempt is doing.

    running: it trains. exited: it ended with `exit_code`. gone: it is no more and its exit status is
    unknown (the run directory says what it did). waiting: submitted to a cluster whose own queue
    (Kueue, Volcano) has not admitted it yet; `reason` says why. failed: the cluster gave up on it
    after its own restarts; `reason` is the cluster's message.
    """

    state: Literal["running", "exited", "gone", "waiting", "failed"]
    exit_code: int | None = None  # negative: killed by that signal
    reason: str | None = None


def attempt_started(handle: Handle | None) -> bool:
    """Whether a job's handle names an attempt an executor started (a process, a cluster job)."""
    return bool(handle) and bool(handle.get("pid") or handle.get("executor"))


class WaitForCapacity(Exception):
    """Raised by `start` when the executor's cluster cannot hold the job (a Ray cluster smaller than its
    gang): the job stays queued, with `detail` as its waiting reason, and is tried again later."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Executor(Protocol):
    name: str

    def start(self, launch: Launch) -> Handle:
        """Start the attempt and return its handle; raises WaitForCapacity when it cannot run there
        yet, another exception on failure to start."""

    def poll(self, handle: Handle) -> Poll:
        """Whether the attempt still runs, without blocking."""

    def stop(self, handle: Handle) -> None:
        """Ask the attempt to write a checkpoint and exit (SIGTERM for a process)."""

    def cancel(self, handle: Handle) -> None:
        """End the attempt now, freeing its devices; no checkpoint."""

    def logs(self, handle: Handle, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Log bytes from `offset` (at most `limit`) and the offset after them."""
