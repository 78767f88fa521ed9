"""metrics.jsonl: one JSON object per line, appended and flushed as training happens."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Observers of a run's metrics file (experiment tracking), keyed by the file's resolved path, so
# every writer of that file (the SFT loop, the alignment trainers) feeds them without knowing them.
_SUBSCRIBERS: dict[Path, list[Callable[[dict[str, Any]], None]]] = {}


def subscribe(path: Path, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Call `callback(record)` after each row appended to `path`; returns the unsubscribe function."""
    key = Path(path).resolve()
    _SUBSCRIBERS.setdefault(key, []).append(callback)
    return lambda: _SUBSCRIBERS.get(key, []).remove(callback) if callback in _SUBSCRIBERS.get(key, []) else None


def notify(path: Path, record: dict[str, Any]) -> bool:
    """Pass `record` to the observers of `path` (also for rows another process appended); returns
    False if one of them failed (a tracking outage must not stop training: the file has the data)."""
    ok = True
    for callback in list(_SUBSCRIBERS.get(Path(path).resolve(), [])):
        try:
            callback(record)
        except Exception as err:
            ok = False
            warnings.warn(f"metrics observer failed ({type(err).__name__}: {err}); training goes on")
    return ok


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        self._warned = False

    def _notify(self, record: dict[str, Any]) -> None:
        if self._warned:
            with warnings.catch_warnings():  # warn once per log
                warnings.simplefilter("ignore")
                notify(self.path, record)
        elif not notify(self.path, record):
            self._warned = True

    def append(self, record: dict[str, Any]) -> None:
        record = {**record, "time": round(time.time(), 3)}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._notify(record)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write
        return rows

    def truncate_after(self, step: int) -> None:
        """On resume, forget rows logged after the checkpoint we resume from (they will be redone)."""
        if not self.path.is_file():
            return
        rows = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, self.path)


def peak_memory_mb(device: str) -> float:
    """CUDA: max allocated by torch. CPU: the process's peak resident set size."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def system_metrics(device: str) -> dict[str, float]:
    """Machine load alongside each step (MLflow shows them as the run's system metrics)."""
    import psutil

    out = {
        "system/cpu_percent": psutil.cpu_percent(interval=None),
        "system/rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
        "system/ram_available_mb": round(psutil.virtual_memory().available / 2**20, 1),
    }
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        out["system/gpu_memory_used_mb"] = round((total - free) / 2**20, 1)
    return out
