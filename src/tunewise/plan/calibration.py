"""Measured throughput kept between runs: `$TUNEWISE_HOME/calibration.json`.

One entry per model + device + mode, written by `tunewise plan --measure --save` and read by later
plans, which then use the measured tokens/s instead of the FLOP-based estimate (and say so).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tunewise.workspace import home

FILENAME = "calibration.json"


@dataclass(frozen=True)
class CalibrationEntry:
    model: str
    device: str
    mode: str
    tokens_per_s: float
    seq_len: int
    micro_batch: int
    peak_bytes: int
    measured_at: str


def calibration_path() -> Path:
    return home() / FILENAME


def device_key(device: str) -> str:
    """Which machine a measurement belongs to: the catalog id of the CUDA card (its name when the
    catalog has no such card), or this CPU and its core count."""
    if device == "cuda":
        import torch

        from tunewise.plan.hardware import load_catalog

        name = torch.cuda.get_device_name(0)
        squashed = name.lower().replace(" ", "").replace("-", "")
        for gpu_id in load_catalog().devices:
            if gpu_id != "cpu" and all(part in squashed for part in gpu_id.split("-")):
                return gpu_id
        return "cuda:" + name
    return f"cpu:{platform.processor() or platform.machine()}:{os.cpu_count()}"


def load_entries() -> list[CalibrationEntry]:
    path = calibration_path()
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text())
        return [CalibrationEntry(**item) for item in raw.get("entries", [])]
    except (ValueError, TypeError):
        return []  # a damaged file is ignored rather than blocking every plan; --save rewrites it


def find(model: str, device: str, mode: str) -> CalibrationEntry | None:
    for entry in load_entries():
        if (entry.model, entry.device, entry.mode) == (model, device, mode):
            return entry
    return None


def save(entries: list[CalibrationEntry]) -> Path:
    """Add or replace entries (keyed by model, device and mode); written atomically."""
    keep = {(e.model, e.device, e.mode): e for e in load_entries()}
    for entry in entries:
        keep[(entry.model, entry.device, entry.mode)] = entry
    path = calibration_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"entries": [asdict(e) for e in keep.values()]}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
