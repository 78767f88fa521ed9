"""Stop on request: SIGTERM makes a training run write a checkpoint at the next step and exit.

The control plane asks a job to stop this way when it is preempted or paused; the same command
later resumes it at the exact step. `tunewise train` installs the handler; library callers that
want the same behaviour call `install_stop_handler()` themselves.
"""

from __future__ import annotations

import signal
import threading

from tunewise.errors import TunewiseError

EXIT_STOPPED = 3  # `tunewise train` exit status when it stopped on request after a checkpoint

_requested = threading.Event()


class TrainingStopped(TunewiseError):
    """Training stopped on request after writing a checkpoint; re-running the command resumes it."""

    exit_code = EXIT_STOPPED

    def __init__(self, step: int | None):
        self.step = step
        where = f"at step {step} after writing a checkpoint" if step else "before the first step"
        super().__init__(f"stopped on request {where}", hint="run the same command again to resume")


def install_stop_handler() -> None:
    """SIGTERM sets the stop request instead of killing the process (main thread only)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: _requested.set())


def stop_requested() -> bool:
    return _requested.is_set()


def request_stop() -> None:
    """Ask the loop to stop as SIGTERM would (tests, embedding code)."""
    _requested.set()


def clear_stop_request() -> None:
    _requested.clear()
