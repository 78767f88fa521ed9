"""The local executor: each job attempt is its own `tunewise train` process on this machine.

The process gets its own session (so a cancel kills everything it started), the job's devices
through CUDA_VISIBLE_DEVICES, and appends to the job's log file. Its handle records the pid and
the process's start time, so a server restarted while the job trains finds it again and never
mistakes a recycled pid for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from tunewise.jobs.executors.base import Handle, Launch, Poll
from tunewise.jobs.schedule_types import Placement


def visible_devices(placement: Placement) -> str:
    """CUDA_VISIBLE_DEVICES for a placement on this node: its GPU indices, or none for a CPU job."""
    gpus = sorted({slot.gpu for slot in placement.slots if slot.gpu is not None})
    return ",".join(str(g) for g in gpus)


class LocalExecutor:
    name = "local"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self._children: dict[int, subprocess.Popen] = {}  # started by this server: reaped with their exit code
        self._lock = threading.Lock()

    def start(self, launch: Launch) -> Handle:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **launch.env, "PYTHONUNBUFFERED": "1",
               "CUDA_VISIBLE_DEVICES": visible_devices(launch.placement)}
        with launch.log_path.open("ab") as log:
            log.write(f"\n--- attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            proc = subprocess.Popen([self.python, "-m", "tunewise", "train", str(launch.spec_path)],
                                    cwd=str(launch.spec_path.parent), env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self._children[proc.pid] = proc
        return {"executor": self.name, "pid": proc.pid, "create_time": _create_time(proc.pid),
                "log": str(launch.log_path), "started_at": time.time()}

    def poll(self, handle: Handle) -> Poll:
        pid = int(handle["pid"])
        with self._lock:
            child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return Poll("running")
            with self._lock:
                self._children.pop(pid, None)
            return Poll("exited", code)
        return Poll("running") if self._alive(handle) else Poll("gone")

    def _alive(self, handle: Handle) -> bool:
        try:
            proc = psutil.Process(int(handle["pid"]))
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            recorded = handle.get("create_time")
            return recorded is None or abs(proc.create_time() - float(recorded)) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def stop(self, handle: Handle) -> None:
        # Only the training process itself: it checkpoints and then ends what it started.
        if self._alive(handle) or int(handle["pid"]) in self._children:
            _signal(int(handle["pid"]), signal.SIGTERM, group=False)

    def cancel(self, handle: Handle) -> None:
        pid = int(handle["pid"])
        if self._alive(handle) or pid in self._children:
            _signal(pid, signal.SIGKILL, group=True)
        with self._lock:
            child = self._children.pop(pid, None)
        if child is not None:  # reap it now: a cancelled job is not polled again
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def logs(self, handle: Handle, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        return read_log(Path(handle["log"]), offset, limit)


def read_log(path: Path, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
    """Bytes of a log file from `offset` (at most `limit`), and the offset after them."""
    if not path.is_file():
        return b"", offset
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(limit)
    return data, offset + len(data)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(os.getpgid(pid), sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def make(**options) -> LocalExecutor:
    return LocalExecutor(**options)
