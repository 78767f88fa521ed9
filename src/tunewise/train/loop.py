"""The supervised training loop: a plain recipe that reads top to bottom.

AdamW over the trainable parameters, warmup then cosine/linear decay, gradient accumulation
weighted per token, clipping, periodic validation, durable checkpoints, exact resume.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewise.train.batches import BatchPlan
from tunewise.train.checkpoint import CheckpointManager, SavePolicy
from tunewise.train.compile import AUTO_DECIDE_AT_STEP, compile_if_worth_it
from tunewise.train.loss import labelled_loss_sum
from tunewise.train.metrics_log import MetricsLog, peak_memory_mb, system_metrics
from tunewise.train.progress import TrainingProgress
from tunewise.train.state import LoopState, read_checkpoint, write_checkpoint
from tunewise.train.stop import TrainingStopped, stop_requested


@dataclass(frozen=True)
class LoopConfig:
    total_steps: int
    gradient_accumulation: int
    max_grad_norm: float
    eval_every_steps: int | None
    device: str
    head_only_on_labels: bool
    staging_dir: Path  # local scratch for checkpoints before they are stored
    auto_compile: bool = False  # train.compile: auto, where it applies (train/compile.py)


def total_steps_for(plan: BatchPlan, epochs: float, gradient_accumulation: int, max_steps: int | None) -> int:
    if max_steps:
        return max_steps
    per_epoch = math.ceil(plan.micro_batches_per_epoch() / gradient_accumulation)
    return max(1, math.ceil(per_epoch * epochs))


def _micro_batches(plan: BatchPlan, state: LoopState) -> Iterator[list[int]]:
    """Yield micro-batches from the saved data position on, advancing epochs as needed."""
    while True:
        batches = plan.epoch(state.epoch)
        while state.batch_in_epoch < len(batches):
            indices = batches[state.batch_in_epoch]
            state.batch_in_epoch += 1
            yield indices
        state.epoch += 1
        state.batch_in_epoch = 0


@dataclass(frozen=True)
class Validation:
    loss: float  # mean token cross-entropy over the whole validation split
    accuracy: float  # share of its labelled tokens predicted right (next-token argmax)


def validate(model: Any, plan: BatchPlan | None, cfg: LoopConfig) -> Validation | None:
    """Loss and token accuracy over the whole validation split; None without one."""
    if plan is None or not plan.items:
        return None
    model.eval()
    total, count, correct = 0.0, 0, 0
    with torch.no_grad():
        for indices in plan.epoch(0):
            batch, _ = plan.tensors(indices, cfg.device)
            part = labelled_loss_sum(model, batch, head_only_on_labels=cfg.head_only_on_labels)
            total, count, correct = total + float(part.loss_sum), count + part.count, correct + part.correct
    model.train()
    return Validation(total / count, correct / count) if count else None


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean token loss
    accuracy: float  # share of labelled tokens predicted right
    grad_norm: float
    tokens: int  # real (non-padding) tokens


def _optimizer_step(model, optimizer, scheduler, plan, batches, cfg) -> StepResult:
    """One optimizer step over `batches`."""
    tensors = [plan.tensors(indices, cfg.device) for indices in batches]
    labelled = sum(int((b["labels"][:, 1:] != -100).sum()) for b, _ in tensors)
    total_loss, correct = 0.0, 0
    for batch, _ in tensors:
        part = labelled_loss_sum(model, batch, head_only_on_labels=cfg.head_only_on_labels)
        if labelled:
            (part.loss_sum / labelled).backward()
        total_loss += float(part.loss_sum.detach())
        correct += part.correct
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(total_loss / max(labelled, 1), correct / max(labelled, 1), grad_norm,
                      sum(real for _, real in tensors))


def save_checkpoint(manager: CheckpointManager, model, optimizer, scheduler, state: LoopState, cfg: LoopConfig,
                    val: Validation | None) -> None:
    cfg.staging_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"step-{state.step}-", dir=cfg.staging_dir))
    try:
        write_checkpoint(folder, model, optimizer, scheduler, state)
        manager.save(state.step, folder, {"val_loss": val.loss, "val_accuracy": val.accuracy} if val else {})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resume_if_possible(manager: CheckpointManager, model, optimizer, scheduler, staging_dir: Path) -> LoopState | None:
    """Restore the newest checkpoint that verifies; None when there is none (a fresh run)."""
    found = manager.fetch_latest(dest=staging_dir)
    if found is None:
        return None
    _, folder = found
    return read_checkpoint(Path(folder), model, optimizer, scheduler)


def train_loop(model, optimizer, scheduler, plan: BatchPlan, val_plan: BatchPlan | None, state: LoopState,
               cfg: LoopConfig, manager: CheckpointManager, save_policy: SavePolicy, metrics: MetricsLog) -> LoopState:
    """Run optimizer steps from state.step to cfg.total_steps. Returns the final state.

    On a stop request (SIGTERM under `tunewise train`) the step under way finishes, a checkpoint is
    written for it, and TrainingStopped is raised: running the same job again resumes there.
    """
    if stop_requested():
        raise TrainingStopped(None)
    model.train()
    stream = _micro_batches(plan, state)
    started = time.monotonic() - state.elapsed_s
    first_step = state.step
    with TrainingProgress(cfg.total_steps, state.step) as progress:
        while state.step < cfg.total_steps:
            t0 = time.monotonic()
            batches = [next(stream) for _ in range(cfg.gradient_accumulation)]
            result = _optimizer_step(model, optimizer, scheduler, plan, batches, cfg)
            loss = result.loss
            state.step += 1
            state.tokens_seen += result.tokens
            state.elapsed_s = time.monotonic() - started
            step_seconds = time.monotonic() - t0
            tokens_per_s = result.tokens / max(step_seconds, 1e-9)
            if cfg.auto_compile and state.step - first_step == AUTO_DECIDE_AT_STEP:
                progress.note(compile_if_worth_it(model, (plan, val_plan), cfg.total_steps - state.step, step_seconds))
            record = {
                "step": state.step,
                "train_loss": round(loss, 5),
                "train_accuracy": round(result.accuracy, 5),
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": round(result.grad_norm, 5),
                "tokens_per_s": round(tokens_per_s, 1),
                "peak_memory_mb": round(peak_memory_mb(cfg.device), 1),
                **system_metrics(cfg.device),
            }
            last = state.step == cfg.total_steps
            saving = last or save_policy.should_save(state.step)
            evaluating = saving or (cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0)
            val = validate(model, val_plan, cfg) if evaluating else None
            if val is not None:
                record["val_loss"], record["val_accuracy"] = round(val.loss, 5), round(val.accuracy, 5)
                state.best_val_loss = val.loss if state.best_val_loss is None else min(state.best_val_loss, val.loss)
            metrics.append(record)
            progress.update(state.step, loss=loss, tokens_per_s=tokens_per_s, val_loss=val.loss if val else None)
            stopping = stop_requested() and not last
            if saving or stopping:
                save_checkpoint(manager, model, optimizer, scheduler, state, cfg, val)
                save_policy.mark_saved(state.step)
            if stopping:
                raise TrainingStopped(state.step)
    return state
