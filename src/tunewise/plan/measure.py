"""Calibration: real training steps of each feasible mode on this machine, against the estimate.

Each mode runs in its own subprocess (tunewise.plan._measure_worker) so that the peak memory read
is that mode's alone; the estimate is computed for exactly the same setup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tunewise.errors import TunewiseError
from tunewise.plan import calibration
from tunewise.plan.architecture import shape_from_model_dir
from tunewise.plan.hardware import load_catalog
from tunewise.plan.memory import PRECISIONS, LoraSetup, TrainSetup, estimate_memory
from tunewise.plan.throughput import flops_per_token, tokens_per_second

MEASURABLE = ("full", "lora", "qlora", "dora")
# Tensor buffers from mmap: freed memory goes back to the OS, so RSS follows live tensors.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


class MeasureError(TunewiseError):
    """A measurement run failed."""


@dataclass
class Measurement:
    mode: str
    device: str
    seq_len: int
    micro_batch: int
    estimated_peak_bytes: int
    measured_peak_bytes: int | None
    estimated_tokens_per_s: float
    measured_tokens_per_s: float | None
    skipped: str | None = None  # why the mode was not run
    error: str | None = None

    @property
    def relative_error(self) -> float | None:
        """(estimate - measured) / measured: positive when the estimate is high."""
        if not self.measured_peak_bytes:
            return None
        return (self.estimated_peak_bytes - self.measured_peak_bytes) / self.measured_peak_bytes

    def to_json(self) -> dict:
        out = asdict(self)
        out["relative_error"] = None if self.relative_error is None else round(self.relative_error, 4)
        return out


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _estimate(shape, mode: str, device: str, seq_len: int, micro_batch: int, ckpt: bool, catalog) -> tuple[int, float]:
    """Estimated peak (as this device measures it) and tokens/s for the worker's exact setup."""
    setup = TrainSetup(
        mode=mode, seq_len=seq_len, micro_batch=micro_batch,
        precision=PRECISIONS["fp32" if device == "cpu" else "bf16"], device=device,
        gradient_checkpointing=ckpt, lora=LoraSetup(),  # the methods' default options
        cpu_runtime_bytes=int(float(catalog.overhead.get("cpu_runtime_mib", 80)) * 2**20),
    )
    est = estimate_memory(shape, setup)
    peak = est.peak_bytes
    if device == "cuda":  # max_memory_allocated sees tensors only: no context, no fragmentation
        peak -= est.breakdown.get("framework_overhead", 0)
    dev = catalog.device("cpu") if device == "cpu" else None
    if dev is None:
        return peak, 0.0
    tps = tokens_per_second(flops_per_token(shape, setup), peak_tflops=dev.peak_tflops,
                            efficiency=catalog.efficiency_for(dev, mode), devices=1)
    return peak, tps


def _run_worker(args: dict, timeout_s: float) -> dict:
    env = dict(os.environ)
    if args["device"] == "cpu":
        env.update(_MALLOC_ENV)
    cmd = [sys.executable, "-m", "tunewise.plan._measure_worker", json.dumps(args)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise MeasureError(f"{args['mode']}: measurement ran past {timeout_s:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise MeasureError(f"{args['mode']}: measurement failed (exit {proc.returncode}): {' | '.join(tail)}")
    return json.loads(lines[-1])


def measure_modes(
    model: str = "smollm2-135m-instruct",
    *,
    modes: tuple[str, ...] = MEASURABLE,
    seq_len: int = 256,
    micro_batch: int = 2,
    steps: int = 3,
    gradient_checkpointing: bool = False,
    device: str = "auto",
    save: bool = False,
    timeout_s: float = 900,
) -> list[Measurement]:
    """Run `steps` real training steps of each mode that fits, and compare with the estimates.

    Args:
        model: bundled name, local model directory or hub id (resolved like `base_model`).
        modes: among full, lora, qlora, dora; modes estimated not to fit are skipped.
        seq_len, micro_batch: the batch shape of every step (random token ids).
        steps: steps per mode; the first warms up and is left out of tokens/s.
        device: auto, cpu or cuda (auto: cuda when available).
        save: store measured tokens/s in $TUNEWISE_HOME/calibration.json for later plans.
    """
    from tunewise.models import resolve_base_model
    from tunewise.plan.fit import check_fit

    device = _device(device)
    model_dir: Path = resolve_base_model(model)
    shape = shape_from_model_dir(model_dir)
    catalog = load_catalog()
    results: list[Measurement] = []
    for mode in modes:
        if mode not in MEASURABLE:
            raise MeasureError(f"--measure runs {', '.join(MEASURABLE)}; {mode!r} is not one of them")
        est_peak, est_tps = _estimate(shape, mode, device, seq_len, micro_batch, gradient_checkpointing, catalog)
        row = Measurement(mode, device, seq_len, micro_batch, est_peak, None, est_tps, None)
        decision = check_fit(shape, mode, None, seq_len=seq_len, micro_batch=micro_batch,
                             gradient_checkpointing=gradient_checkpointing, device=device,
                             dtype_bytes=4 if device == "cpu" else 2)
        if not decision.fits:
            results.append(replace(row, skipped=decision.message))
            continue
        args = {"mode": mode, "model_dir": str(model_dir), "device": device, "seq_len": seq_len,
                "micro_batch": micro_batch, "steps": steps, "gradient_checkpointing": gradient_checkpointing}
        try:
            out = _run_worker(args, timeout_s)
        except MeasureError as err:
            results.append(replace(row, error=err.message))
            continue
        results.append(replace(row, measured_peak_bytes=int(out["peak_bytes"]), measured_tokens_per_s=out["tokens_per_s"]))
    if save:
        save_calibration(model, results)
    return results


def save_calibration(model: str, results: list[Measurement]) -> Path:
    entries = [
        calibration.CalibrationEntry(
            model=model, device=calibration.device_key(r.device), mode=r.mode, tokens_per_s=r.measured_tokens_per_s,
            seq_len=r.seq_len, micro_batch=r.micro_batch, peak_bytes=r.measured_peak_bytes, measured_at=calibration.now(),
        )
        for r in results
        if r.measured_tokens_per_s
    ]
    return calibration.save(entries)
