"""Shared by every benchmark: the machine description, the matmul peak, results files, subprocesses.

Each benchmark is one script (`python bench/<name>.py [--full]`) that prints a JSON result on its
last stdout line and writes it to bench/results/<name>.json; `bench/run_all.py` runs them all and
rewrites BENCHMARKS.md from those files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# The shared, converted copy of the bundled model (conversion takes ~40 s; do it once per checkout).
os.environ.setdefault("TUNEWISE_MODEL_CACHE", str(REPO / ".tunewise" / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `tests.reliability` holds the corpus runner the reliability bench shares


def parse_args(description: str, extra: Any = None) -> argparse.Namespace:
    """--full (the figures for BENCHMARKS.md) or the quick default (a smoke run for tests)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="Full size (minutes); default is a quick run.")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def side_parser(description: str) -> argparse.ArgumentParser:
    """The arguments both sides of the throughput benchmark take: the same data and hyperparameters."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def load_average() -> float:
    """1-minute load average (the machine is shared; figures taken at high load are noisy)."""
    return round(os.getloadavg()[0], 2)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the figures ran on: CPU, cores, RAM, accelerator, library versions, load average."""
    import peft
    import torch
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1m": load_average(),
    }
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError:
        info["trl"] = None
    return info


def training_device() -> tuple[str, Any]:
    """(device, dtype) the way tunewise picks them: bf16 on CUDA, fp32 on CPU."""

    from tunewise.models import resolve_device_policy

    policy = resolve_device_policy("auto", "auto")
    return policy.device, policy.dtype


def matmul_peak_flops(device: str, dtype: Any, n: int = 2048, seconds: float = 3.0) -> dict[str, float]:
    """FLOP/s of an n x n x n torch.mm on `device` in `dtype`, repeated for `seconds` (the MFU denominator).

    "wall" is the median call's FLOP/s: the rate the machine sustains. On this shared VM single calls
    range widely (the same 2048^3 product from 140 to 180 GFLOP/s, a 1024^3 one up to 240, as
    neighbours come and go), so the best call measures a quiet moment, not a rate a minutes-long
    run can hold; it is kept as "best" and reported beside it. "cpu" is the median per second of
    this process's CPU time times the thread count (comparable with CPU-time throughput).
    """
    import statistics

    import torch

    if device == "cuda":
        n = max(n, 8192)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    walls, cpus = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(walls) < 5:
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append(2 * n**3 / (time.perf_counter() - t0))
        cpus.append(2 * n**3 * torch.get_num_threads() / max(time.process_time() - c0, 1e-9))
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "best": max(walls), "calls": len(walls),
            "flops": 2 * n**3 * len(walls), "busy_s": sum(2 * n**3 / w for w in walls),
            "cpu_busy_s": sum(2 * n**3 / c for c in cpus)}  # CPU seconds / threads


PROBE_SECONDS = 2.0


class StepProbes:
    """The square-matmul rate sampled between optimizer steps: the MFU denominator of a shared host.

    This VM's two cores share their physical cores with neighbours, and its matmul rate flips
    between about 155 and 250 GFLOP/s within seconds. A probe before and after training samples two
    moments of a minutes-long run; a short probe after every step samples the run's own minutes.
    The time spent probing is recorded so that the throughput clock can leave it out.
    """

    def __init__(self, device: str, dtype: Any, seconds: float = PROBE_SECONDS) -> None:
        # A GPU's rate holds steady and its steps take milliseconds: a short probe is enough there.
        self.device, self.dtype, self.seconds = device, dtype, seconds if device == "cpu" else seconds / 4
        self.samples: list[dict[str, float]] = []
        self.wall_s = self.cpu_s = 0.0  # spent probing so far

    def sample(self) -> None:
        t0, c0 = time.monotonic(), time.process_time()
        self.samples.append(matmul_peak_flops(self.device, self.dtype, seconds=self.seconds))
        self.wall_s += time.monotonic() - t0
        self.cpu_s += time.process_time() - c0

    def spent(self) -> dict[str, float]:
        """Probe seconds so far, to store beside a step's clock readings."""
        return {"probe_s": self.wall_s, "probe_cpu_s": self.cpu_s}


def in_run_rate(samples: list[dict[str, float]]) -> dict[str, float]:
    """The time-averaged matmul rate over all probes of a run (all their FLOPs over all their seconds),
    the same per second of CPU time, and the best single call."""
    flops = sum(s["flops"] for s in samples)
    return {"wall": flops / sum(s["busy_s"] for s in samples), "cpu": flops / sum(s["cpu_busy_s"] for s in samples),
            "best": max(s["best"] for s in samples), "probes": [round(s["wall"] / 1e9, 1) for s in samples]}


def peak_around(work: Callable[[], T], device: str, dtype: Any) -> tuple[T, dict[str, float]]:
    """Run `work` between two matmul_peak_flops measurements; return its result and the higher of the
    two, key by key (the stricter denominator: the shared host's speed drifts while work runs)."""
    before = matmul_peak_flops(device, dtype)
    result = work()
    after = matmul_peak_flops(device, dtype)
    return result, {key: max(before[key], after[key]) for key in ("wall", "cpu", "best")}


def apply_thread_setting() -> None:
    """BENCH_THREADS=N pins torch to N threads (1 makes CPU-time figures meaningful on a busy machine)."""
    threads = os.environ.get("BENCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def current_rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def emit(name: str, result: dict[str, Any], *, write: bool = True) -> None:
    """Print the result as the last stdout line and keep it under bench/results/<name>.json."""
    payload = {"benchmark": name, **result}
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def run_json(cmd: list[str], *, env: dict[str, str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Run a child that prints a JSON object on its last stdout line; return that object.

    stderr passes through (progress bars), so a long child shows it is alive.
    """
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=timeout_s, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
