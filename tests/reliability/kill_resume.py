"""SIGKILL a training run at random points, re-run the same command each time, check the result.

The contract checked (a failed check is a string in KillResumeReport.problems):
- after every kill, every checkpoint that has a manifest verifies (sha256 of every file), and the
  newest verified one is the newest listed: a kill never leaves a corrupt checkpoint behind;
- the re-run command finishes, its status is completed at the final step, and metrics.jsonl holds
  every step exactly once;
- its final train and validation loss match an uninterrupted run of the same spec.

Kill points are random: each is a step to reach plus a random share of one step's time (so kills
land in forward, backward, optimizer and checkpoint writes alike), or a random moment of start-up.
Used by tests/reliability/test_kill_resume.py (tiny model, 3 kills) and bench/reliability.py
(bundled model, 10 kills).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOSS_TOLERANCE = 1e-3


@dataclass
class KillPoint:
    after_step: int  # 0: during start-up
    delay_s: float  # after that step is logged (or after launch, for start-up kills)
    step_reached: int = 0  # last step logged when the signal was sent
    checkpoints: int = 0  # manifests present after the kill
    corrupt: list[str] = field(default_factory=list)
    exited_early: bool = False  # the process had finished before the kill


@dataclass
class KillResumeReport:
    total_steps: int
    kills: list[KillPoint]
    reference: dict[str, Any]
    final: dict[str, Any]
    reruns_to_finish: int
    seconds: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps, "kills": [vars(k) for k in self.kills], "reference": self.reference,
            "final": self.final, "reruns_to_finish": self.reruns_to_finish, "seconds": round(self.seconds, 1),
            "problems": self.problems, "ok": self.ok,
        }


def write_spec(path: Path, *, name: str, base_model: str, data: Path, total_steps: int, every_steps: int,
               max_length: int, micro_batch: int) -> Path:
    raw = {
        "name": name,
        "base_model": base_model,
        "method": {"name": "lora"},
        "data": {"train": str(data), "max_length": max_length, "val_fraction": 0.1},
        "train": {"max_steps": total_steps, "micro_batch_size": micro_batch, "learning_rate": 1e-3, "seed": 3,
                  "precision": "fp32", "device": "cpu"},
        "checkpoint": {"every_steps": every_steps, "keep_best": 1, "keep_last": 2},
        "eval": {"enabled": False},  # the evaluation after training is not part of the resume contract
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by the kill
    return rows


def _train_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "tunewise", "train", str(spec)]


def _verify_checkpoints(run_dir: Path) -> tuple[int, list[str]]:
    """(manifests found, problems): every listed checkpoint must verify; the newest must be `latest`."""
    from tunewise.errors import CheckpointError
    from tunewise.train.checkpoint import CheckpointManager

    root = run_dir / "checkpoints"
    if not root.exists():
        return 0, []
    manager = CheckpointManager(root, keep_best=1, keep_last=2)
    problems = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        infos = manager.list()
        for info in infos:
            try:
                manager.fetch(info)
            except CheckpointError as err:
                problems.append(f"{info.name}: {err.message}")
        latest = manager.latest(verify=True)
    if infos and (latest is None or latest.step != infos[-1].step):
        problems.append(f"newest checkpoint {infos[-1].name} is not the verified latest")
    return len(infos), problems


def _step_seconds(reference_rows: list[dict]) -> float:
    times = [r["time"] for r in reference_rows]
    return max((times[-1] - times[0]) / max(len(times) - 1, 1), 0.05)


def plan_kills(rng: random.Random, kills: int, total_steps: int, startup_share: float = 0.2) -> list[KillPoint]:
    """`kills` points in increasing step order; about `startup_share` of them during start-up."""
    points = []
    steps = sorted(rng.sample(range(1, total_steps), min(kills, total_steps - 1)))
    for step in steps:
        if rng.random() < startup_share:
            points.append(KillPoint(after_step=0, delay_s=rng.uniform(0.2, 1.0)))  # scaled by start-up time later
        else:
            points.append(KillPoint(after_step=step, delay_s=rng.random()))  # a share of one step's time
    return points


def kill_and_resume(workdir: Path, *, base_model: str, data: Path, total_steps: int, every_steps: int,
                    kills: int, seed: int, max_length: int = 128, micro_batch: int = 4,
                    env: dict[str, str] | None = None) -> KillResumeReport:
    """Run the reference, then the killed-and-resumed run; see the module docstring for the checks."""
    started = time.monotonic()
    env = {**os.environ, **(env or {})}
    runs = Path(env["TUNEWISE_HOME"]) / "runs"
    common = dict(base_model=base_model, data=data, total_steps=total_steps, every_steps=every_steps,
                  max_length=max_length, micro_batch=micro_batch)
    reference_spec = write_spec(workdir / "reference.yaml", name="reference", **common)
    launched = time.time()
    done = subprocess.run(_train_cmd(reference_spec), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{done.stderr[-3000:]}")
    reference = _metrics(runs / "reference")
    step_s = _step_seconds(reference)
    startup_s = reference[0]["time"] - launched - step_s  # from launch to the first step's start

    spec = write_spec(workdir / "killed.yaml", name="killed", **common)
    run_dir = runs / "killed"
    points = plan_kills(random.Random(seed), kills, total_steps)
    problems: list[str] = []
    for point in points:
        _kill_once(spec, run_dir, env, point, startup_s=max(startup_s, 1.0), step_s=step_s)
        point.checkpoints, point.corrupt = _verify_checkpoints(run_dir)
        problems += [f"after the kill at step {point.step_reached}: {c}" for c in point.corrupt]

    reruns, final_rows, last = 0, [], None
    while reruns < 3:
        reruns += 1
        last = subprocess.run(_train_cmd(spec), env=env, capture_output=True, text=True)
        if last.returncode == 0:
            break
    final_rows = _metrics(run_dir)
    if last is None or last.returncode != 0:
        problems.append(f"the re-run command did not finish: {last.stderr[-1500:] if last else ''}")
    status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").exists() else {}
    if status.get("state") != "completed" or status.get("step") != total_steps:
        problems.append(f"status is {status.get('state')} at step {status.get('step')}, not completed at {total_steps}")
    steps = [r["step"] for r in final_rows]
    if steps != list(range(1, total_steps + 1)):
        problems.append(f"metrics.jsonl steps are {steps}, not 1..{total_steps} once each")
    _, corrupt = _verify_checkpoints(run_dir)
    problems += [f"at the end: {c}" for c in corrupt]
    for key in ("train_loss", "val_loss"):
        want, got = reference[-1].get(key), final_rows[-1].get(key) if final_rows else None
        if want is None or got is None or abs(want - got) > LOSS_TOLERANCE * max(1.0, abs(want)):
            problems.append(f"final {key} {got} differs from the uninterrupted run's {want}")
    pick = ("step", "train_loss", "val_loss")
    return KillResumeReport(total_steps, points, {k: reference[-1].get(k) for k in pick},
                            {k: final_rows[-1].get(k) for k in pick} if final_rows else {}, reruns,
                            time.monotonic() - started, problems)


def _kill_once(spec: Path, run_dir: Path, env: dict, point: KillPoint, *, startup_s: float, step_s: float) -> None:
    launched = time.time()
    proc = subprocess.Popen(_train_cmd(spec), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if point.after_step == 0:
        point.delay_s = round(point.delay_s * startup_s, 2)
        while time.time() < launched + point.delay_s and proc.poll() is None:
            time.sleep(0.01)
    else:
        while time.time() < launched + 600 and proc.poll() is None:
            rows = _metrics(run_dir)
            if rows and rows[-1]["step"] >= point.after_step and rows[-1]["time"] > launched:  # this process's row
                break
            time.sleep(0.02)
        point.delay_s = round(point.delay_s * step_s, 2)
        time.sleep(point.delay_s)
    point.exited_early = proc.poll() is not None
    if not point.exited_early:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = _metrics(run_dir)
    point.step_reached = rows[-1]["step"] if rows else 0
