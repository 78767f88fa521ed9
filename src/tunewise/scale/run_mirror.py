"""A run's record files copied to and from object storage, for runs whose pods the server cannot see.

On Kubernetes the run directory lives on the pod's own disk and goes with it. The pod that holds
rank 0 pushes the small files that say how the run is going (status.json, metrics.jsonl, the batch
plan, the gate) to `<checkpoint.dir>/run/` every few seconds and once more when training ends; the
Kubernetes executor pulls them into the server's run directory for the job, where the control
plane reads them as it does for a local process. Each file is one PUT, so a reader sees the old
copy or the new one, never half of one. Checkpoints stay where they are: the server lists them on
the object store itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tunewise.train.checkpoint_store import Store

log = logging.getLogger(__name__)

RUN_FILES = ("status.json", "metrics.jsonl", "batch_plan.json", "gate.json", "data_report.json")
RUN_URL_ENV = "TUNEWISE_RUN_URL"  # where a pod pushes its run files (set in the rendered pods)
RUN_SUBDIR = "run"


def run_url_for(checkpoint_dir: str) -> str:
    """Where the run files of a job checkpointing to `checkpoint_dir` (an object-store URL) are kept.
    Beside the step-N checkpoints, which the checkpoint manager alone reads."""
    return f"{checkpoint_dir.rstrip('/')}/{RUN_SUBDIR}"


class RunPusher:
    """Pushes a local run directory's record files to `url`, each only when it changed."""

    def __init__(self, run_dir: Path, url: str):
        self.run_dir = run_dir
        self.store = Store(url)
        self._sent: dict[str, tuple[int, int]] = {}

    def push(self) -> int:
        """Upload what changed since the last push; the number of files sent. Errors are logged, not
        raised: training goes on, and the next push tries again."""
        sent = 0
        for name in RUN_FILES:
            path = self.run_dir / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._sent.get(name) == signature:
                continue
            try:
                data = path.read_bytes()
                target = self.store.join(name)
                self.store.retrying(f"uploading {name}", lambda: self.store.fs.pipe_file(target, data))
            except OSError as err:
                log.warning("could not push %s to %s: %s", name, self.store.describe(), err)
                continue
            self._sent[name] = signature
            sent += 1
        return sent


def pull_run_files(url: str, run_dir: Path) -> int:
    """Copy the run files under `url` into `run_dir` (each replaced atomically); the number copied.
    Files not there yet are skipped; an unreachable store raises OSError."""
    store = Store(url)
    store.fs.invalidate_cache(store.root)
    run_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name in RUN_FILES:
        source = store.join(name)
        try:
            data = store.retrying(f"reading {name}", lambda: store.fs.cat_file(source))
        except FileNotFoundError:
            continue
        target = run_dir / name
        if target.is_file() and target.read_bytes() == data:
            continue
        tmp = run_dir / f".{name}.pulled"
        tmp.write_bytes(data)
        os.replace(tmp, target)
        copied += 1
    return copied
