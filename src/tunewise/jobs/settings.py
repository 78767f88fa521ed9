"""What the job side needs to know about its installation: paths, offered models, defaults, limits.

The server builds one `JobSettings` from its YAML config; tests and the CLI can build one directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.spec import BUNDLED_MODEL


@dataclass
class JobSettings:
    home: Path  # the workspace (TUNEWISE_HOME) jobs train in
    files_url: str | None = None  # where uploaded files live; default <home>/files
    models: dict[str, str] = field(default_factory=lambda: {BUNDLED_MODEL: BUNDLED_MODEL})
    supervised_method: str = "lora"  # what OpenAI's `supervised` becomes
    checkpoint_every_steps: int = 50
    checkpoints_kept: int = 3  # OpenAI keeps the last three
    evaluate: bool = False  # run tunewise's evaluation and gate after training
    tracking: bool = False  # log jobs to MLflow
    max_retries: int = 3  # crashes retried from the last checkpoint before a job fails
    retry_backoff_s: float = 10.0  # doubled after each crash
    stop_grace_s: float = 120.0  # a job asked to stop is killed after this long
    priority_classes: dict[str, int] = field(default_factory=lambda: {"low": -10, "normal": 0, "high": 10})
    default_priority_class: str = "normal"
    default_pool: str = "default"
    pools: tuple[str, ...] = ("default",)
    max_upload_bytes: int = 8 << 30

    @property
    def files_root(self) -> str:
        return self.files_url or str(self.home / "files")

    def job_dir(self, job_id: str) -> Path:
        return self.home / "jobs" / job_id

    def run_dir(self, job_id: str) -> Path:
        return self.home / "runs" / job_id

    @property
    def scratch(self) -> Path:
        return self.home / "scratch"


_workspace_lock = threading.RLock()


@contextmanager
def in_workspace(home: Path, *, user: str | None = None) -> Iterator[None]:
    """Run library code that finds the workspace through TUNEWISE_HOME (the registry, tracking) against
    `home`. A server serves one workspace, so this only matters where a process holds several (tests).
    `user` (TUNEWISE_USER) is who the registry records for the events of this call: the team, not the
    server's login."""
    changes = {"TUNEWISE_HOME": str(home), **({"TUNEWISE_USER": user} if user else {})}
    with _workspace_lock:
        before = {name: os.environ.get(name) for name in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
