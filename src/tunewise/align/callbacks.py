"""The bridge from a TRL trainer to tunewise's run directory.

One TrainerCallback does what the supervised loop does by hand: one metrics.jsonl line per step
(TRL's names mapped to tunewise's), durable checkpoints through CheckpointManager on tunewise's
SavePolicy, validation at every checkpoint, status.json progress, the progress bar, and the KL
to the reference with a warning past `kl_warn`.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from tunewise.train.checkpoint import CheckpointManager, SavePolicy
from tunewise.train.distributed import SINGLE, Ranks
from tunewise.train.metrics_log import MetricsLog, peak_memory_mb

console = Console(stderr=True)

# TRL's metric names -> the names tunewise records (shared by every alignment method).
RENAMES = {
    "loss": "train_loss",
    "learning_rate": "lr",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/margins": "reward_margin",
    "rewards/accuracies": "preference_accuracy",
    "accuracy": "preference_accuracy",  # reward model: share of pairs scored chosen > rejected
    "margin": "reward_margin",
    "mean_reward": "reward_mean",
}
_SKIP = {"epoch", "num_tokens", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
         "train_loss", "runtime", "samples_per_second", "steps_per_second"}


def significant(value: float, digits: int = 6) -> float:
    """Round to significant digits, not decimals: a KL of 3e-9 nats must not print as 0."""
    return float(f"{float(value):.{digits}g}")


def tunewise_metrics(logs: dict[str, Any], extra_renames: dict[str, str] | None = None) -> dict[str, float]:
    """TRL's log dict -> {tunewise name: rounded value}; eval_ metrics become val_ ones."""
    renames = {**RENAMES, **(extra_renames or {})}
    out: dict[str, float] = {}
    for key, value in logs.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        evaluation = key.startswith("eval_")
        name = key.removeprefix("eval_")
        if name in _SKIP:
            continue
        name = renames.get(name, name.replace("/", "_"))
        if evaluation:
            name = "val_loss" if name == "train_loss" else f"val_{name}"
        out[name] = significant(value)
    return out


class RunDirCallback(TrainerCallback):
    """Mirror a TRL run into `run_dir`: metrics.jsonl, checkpoints, status.json, progress.

    Args:
        run_dir: the run directory (status.json lives there).
        manager: where checkpoints are kept durably; TRL's local checkpoint is copied in and removed.
        save_policy: when to checkpoint (every_steps / every_minutes); the last step always saves.
        metrics: the run's metrics.jsonl.
        has_validation: evaluate at each checkpoint (and every `eval_every_steps`).
        kl_probe, ref_model: measure KL(policy || reference) (see align.probe) at step 1, every
            `kl_every_steps`, at each validation and at the last step (two forward passes each time).
        kl_warn: warn (console and `kl_warning` in metrics) when the KL exceeds this many nats.
        renames: method-specific metric names on top of RENAMES.
        ranks: the training processes; rank 0 alone records, every rank stores its part of a checkpoint.
    """

    def __init__(self, run_dir: Path, manager: CheckpointManager, save_policy: SavePolicy, metrics: MetricsLog, *,
                 has_validation: bool, eval_every_steps: int | None = None, kl_probe: Any = None,
                 ref_model: Any = None, kl_warn: float | None = None, renames: dict[str, str] | None = None,
                 kl_every_steps: int = 5, ranks: Ranks = SINGLE):
        self.run_dir = run_dir
        self.manager = manager
        self.save_policy = save_policy
        self.metrics = metrics
        self.has_validation = has_validation
        self.eval_every_steps = eval_every_steps
        self.kl_probe = kl_probe
        self.ref_model = ref_model
        self.kl_warn = kl_warn
        self.kl_every_steps = kl_every_steps
        self.renames = renames or {}
        self.ranks = ranks
        self._pending: dict[str, Any] | None = None
        self._progress = None
        self._tokens_seen: float | None = None
        self._last_log_time = time.monotonic()
        self._warned_kl = False
        self.stopped_at: int | None = None  # the step training stopped at on request

    # -- decisions --------------------------------------------------------------------------------

    def on_step_end(self, args, state, control, **kwargs):
        from tunewise.train.stop import stop_requested

        step = state.global_step
        # Every rank saves and stops together: a request seen by any counts.
        saving, stopping = self.ranks.any_of(step >= state.max_steps or self.save_policy.should_save(step),
                                             stop_requested())
        if saving:
            control.should_save = True
        if stopping and step < state.max_steps:
            # SIGTERM: checkpoint this step, then end training (the session raises TrainingStopped).
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = step
        every = self.eval_every_steps
        if self.has_validation and (control.should_save or (every and step % every == 0)):
            control.should_evaluate = True
        return control

    # -- records ----------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        from tunewise.train.progress import TrainingProgress
        from tunewise.train.building_blocks import write_status

        if not self.ranks.is_main:
            return
        write_status(self.run_dir, total_steps=state.max_steps, step=state.global_step)
        self._progress = TrainingProgress(state.max_steps, state.global_step).__enter__()

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not self.ranks.is_main:
            return
        values = tunewise_metrics(logs or {}, self.renames)
        if not values:
            return
        step = state.global_step
        if self._pending is not None and self._pending["step"] != step:
            self._flush()
        if self._pending is None:
            self._pending = {"step": step}
        if "train_loss" in values:
            values.update(self._throughput(logs))
            if step == 1 or step % self.kl_every_steps == 0 or step >= state.max_steps or control.should_evaluate:
                values.update(self._kl(model))
        self._pending.update(values)
        self._warn_on_kl(step)
        if self._progress is not None and "train_loss" in values:
            self._progress.update(step, loss=values["train_loss"], tokens_per_s=values.get("tokens_per_s", 0.0),
                                  val_loss=values.get("val_loss"))

    def _throughput(self, logs: dict[str, Any]) -> dict[str, float]:
        now = time.monotonic()
        elapsed, self._last_log_time = now - self._last_log_time, now
        out = {"peak_memory_mb": round(peak_memory_mb("cuda" if _on_cuda() else "cpu"), 1)}
        tokens = logs.get("num_tokens")
        if isinstance(tokens, (int, float)):
            if self._tokens_seen is not None and tokens >= self._tokens_seen:
                out["tokens_per_s"] = round((tokens - self._tokens_seen) / max(elapsed, 1e-9), 1)
            self._tokens_seen = float(tokens)
        return out

    def _kl(self, model: Any) -> dict[str, float]:
        if self.kl_probe is None or model is None:
            return {}
        kl = self.kl_probe.measure(model, self.ref_model)
        return {} if kl is None else {"kl_ref": significant(kl)}

    def _warn_on_kl(self, step: int) -> None:
        kl = (self._pending or {}).get("kl_ref")
        if self.kl_warn is None or kl is None or kl <= self.kl_warn:
            return
        self._pending["kl_warning"] = True
        if not self._warned_kl:
            self._warned_kl = True
            console.print(f"[yellow]warning:[/] step {step}: KL to the reference is {kl:.3g} nats, past "
                          f"kl_warn={self.kl_warn:g}; the policy may be exploiting the reward (reward hacking). "
                          "Check samples, raise the KL coefficient or stop early.", highlight=False)

    def _flush(self) -> None:
        from tunewise.train.building_blocks import write_status

        if self._pending is None:
            return
        self.metrics.append(self._pending)
        write_status(self.run_dir, step=self._pending["step"])
        self._pending = None

    # -- checkpoints ------------------------------------------------------------------------------

    def on_save(self, args, state, control, **kwargs):
        step = state.global_step
        val_loss = (self._pending or {}).get("val_loss")
        self._flush()
        folder = Path(args.output_dir) / f"checkpoint-{step}"
        metrics = {"val_loss": val_loss} if val_loss is not None else {}
        if self.ranks.distributed:
            self.ranks.barrier()  # every rank has written its part (rng_state_<rank>.pth)
            self.manager.save_sharded(step, folder, metrics, ranks=self.ranks,
                                      owns=lambda rel: _trainer_file_owner(rel) == self.ranks.rank)
        else:
            self.manager.save(step, folder, metrics)
        shutil.rmtree(folder, ignore_errors=True)
        self.save_policy.mark_saved(step)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Write the last pending line and stop the progress bar (also after a failure)."""
        self._flush()
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None


def _trainer_file_owner(relative_path: str) -> int:
    """The rank that stores a file of a transformers Trainer checkpoint: its own RNG state, else rank 0."""
    match = re.match(r"^rng_state_(\d+)\.pth$", relative_path)
    return int(match.group(1)) if match else 0


def _on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
