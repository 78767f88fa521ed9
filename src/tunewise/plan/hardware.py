"""The hardware and price catalog: a data file users edit, read into typed records.

Lookup order: `--hardware FILE`, then `$TUNEWISE_HOME/hardware.yaml`, then the package default.
A user file only needs the entries it changes: it is merged over the default key by key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import SpecError

GIB = 2**30


@dataclass(frozen=True)
class PriceRange:
    low: float  # USD per GPU-hour
    high: float
    source: str = ""

    @property
    def mid(self) -> float:
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class MigProfile:
    name: str  # e.g. "3g.40gb"
    memory_gib: float
    compute_fraction: float


@dataclass(frozen=True)
class Device:
    """One GPU type, or this machine's CPU (`id == "cpu"`)."""

    id: str
    name: str
    memory_gib: float
    peak_tflops: float  # dense bf16 (fp32 for the CPU entry)
    price: PriceRange
    bf16: bool = True
    purchase_usd: float | None = None
    power_w: float | None = None
    gpus_per_node: int = 8
    mig: tuple[MigProfile, ...] = ()

    @property
    def is_cpu(self) -> bool:
        return self.id == "cpu"

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)


@dataclass(frozen=True)
class Catalog:
    devices: dict[str, Device]
    efficiency: dict[str, dict[str, float]]  # "gpu"/"cpu" -> mode -> share of peak FLOP/s
    overhead: dict[str, float]
    costs: dict[str, float]
    source: str
    notes: list[str] = field(default_factory=list)

    def device(self, name: str) -> Device:
        key = name.lower()
        if key not in self.devices:
            known = ", ".join(sorted(self.devices))
            raise SpecError(f"--gpu: unknown device {name!r} in {self.source}", hint=f"known: {known}")
        return self.devices[key]

    def efficiency_for(self, device: Device, mode: str) -> float:
        table = self.efficiency["cpu" if device.is_cpu else "gpu"]
        return float(table.get(mode, table.get("full", 0.3)))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a hardware catalog must be a mapping (gpus:, cpu:, costs: ...)")
    return data


def _device(key: str, raw: dict[str, Any], source: str) -> Device:
    try:
        price = raw.get("price_per_hour") or {}
        return Device(
            id=key,
            name=str(raw.get("name", key)),
            memory_gib=float(raw.get("memory_gib", 0.0)),
            peak_tflops=float(raw["peak_tflops"]),
            price=PriceRange(float(price.get("low", 0.0)), float(price.get("high", 0.0)), str(price.get("source", ""))),
            bf16=bool(raw.get("bf16", True)),
            purchase_usd=float(raw["purchase_usd"]) if raw.get("purchase_usd") is not None else None,
            power_w=float(raw["power_w"]) if raw.get("power_w") is not None else None,
            gpus_per_node=int(raw.get("gpus_per_node", 8)),
            mig=tuple(
                MigProfile(name, float(p["memory_gib"]), float(p["compute_fraction"]))
                for name, p in (raw.get("mig") or {}).items()
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise SpecError(f"{source}: device {key!r}: bad or missing field ({err})") from None


def catalog_path(hardware: str | Path | None = None) -> tuple[Path | None, str]:
    """The user catalog that applies (None for the package default alone) and a label for it."""
    if hardware is not None:
        path = Path(hardware).expanduser()
        if not path.is_file():
            raise SpecError(f"--hardware: {path} does not exist")
        return path, str(path)
    home = os.environ.get("TUNEWISE_HOME")
    if home:
        path = Path(home).expanduser() / "hardware.yaml"
        if path.is_file():
            return path, str(path)
    return None, "tunewise/plan/hardware.yaml (package default)"


def load_catalog(hardware: str | Path | None = None) -> Catalog:
    """Read the catalog: the package default with the user's file merged over it."""
    default = yaml.safe_load(resources.files("tunewise.plan").joinpath("hardware.yaml").read_text())
    path, label = catalog_path(hardware)
    raw = _merge(default, _read_yaml(path)) if path else default
    devices = {key.lower(): _device(key.lower(), spec, label) for key, spec in (raw.get("gpus") or {}).items()}
    if "cpu" in raw:
        devices["cpu"] = _device("cpu", raw["cpu"], label)
    return Catalog(
        devices=devices,
        efficiency={k: dict(v) for k, v in (raw.get("efficiency") or {}).items()},
        overhead=dict(raw.get("overhead") or {}),
        costs=dict(raw.get("costs") or {}),
        source=label,
    )


def this_machine_memory_bytes() -> int:
    """Memory a CPU run can use now: psutil's available RAM."""
    import psutil

    return int(psutil.virtual_memory().available)
