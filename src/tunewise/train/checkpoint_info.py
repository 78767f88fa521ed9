"""What describes a stored checkpoint, and small helpers shared by the checkpoint modules."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunewise.errors import CheckpointError
from tunewise.train.checkpoint_store import MANIFEST

FORMAT_VERSION = 1
STEP_DIR = re.compile(r"^step-(\d{8,})$")
ARTIFACT_DIR = "artifact"  # the run's final artifact, stored beside its checkpoints on object storage


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


@dataclass
class CheckpointInfo:
    step: int
    uri: str  # the checkpoint directory: a local path, or a URL for remote stores
    metrics: dict[str, float]
    created_at: float  # seconds since the epoch
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path -> {"sha256", "bytes"}
    prefix: str = ""  # the folder inside the checkpoint that holds `files` (object stores: the upload's)

    @property
    def name(self) -> str:
        return step_dir_name(self.step)

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())


class RankGroup(Protocol):
    """The processes saving one checkpoint together (tunewise.train.distributed.Ranks)."""

    rank: int
    world: int

    def broadcast(self, obj: Any) -> Any: ...

    def gather(self, obj: Any) -> list[Any] | None: ...



def files_under(local_dir: Path) -> dict[str, Path]:
    if not local_dir.is_dir():
        raise CheckpointError(f"checkpoint source {local_dir} is not a directory")
    files = {p.relative_to(local_dir).as_posix(): p for p in sorted(local_dir.rglob("*")) if p.is_file()}
    if not files:
        raise CheckpointError(f"checkpoint source {local_dir} holds no files")
    if MANIFEST in files:
        raise CheckpointError(f"{local_dir / MANIFEST}: that name is reserved for the checkpoint manifest",
                              hint="rename the file the trainer writes")
    return files


def data_dir(info: CheckpointInfo) -> str:
    return f"{info.name}/{info.prefix}" if info.prefix else info.name


def float_metrics(metrics: dict[str, float] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items()}


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
