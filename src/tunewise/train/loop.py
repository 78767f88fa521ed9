"""The supervised training loop: a plain recipe that reads top to bottom.

AdamW over the trainable parameters, warmup then cosine/linear decay, gradient accumulation
weighted per token, clipping, periodic validation, durable checkpoints, exact resume.

With several processes (train/parallel.py) the micro-batch order is the one a single process
would follow: each optimizer step takes the next `gradient_accumulation x world` micro-batches of
that one stream and rank r trains on every world-th of them, from the r-th. The saved data position
is the stream's, so it means the same at any number of processes.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from tunewise.train.batches import BatchPlan
from tunewise.train.checkpoint import CheckpointManager, SavePolicy
from tunewise.train.compile import AUTO_DECIDE_AT_STEP, compile_if_worth_it
from tunewise.train.distributed import Ranks
from tunewise.train.metrics_log import MetricsLog, peak_memory_mb, system_metrics
from tunewise.train.parallel import ParallelModel
from tunewise.train.progress import TrainingProgress
from tunewise.train.state import LoopState, write_checkpoint
from tunewise.train.state_sharded import owner_rank, read_any_checkpoint, write_sharded_checkpoint
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
    seed: int = 0  # seeds the RNG of a process a resumed checkpoint has no state for


def total_steps_for(plan: BatchPlan, epochs: float, micro_batches_per_step: int, max_steps: int | None) -> int:
    """Optimizer steps of the run; micro_batches_per_step counts every process's (accumulation x world)."""
    if max_steps:
        return max_steps
    per_epoch = math.ceil(plan.micro_batches_per_epoch() / micro_batches_per_step)
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


def validate(parallel: ParallelModel, plan: BatchPlan | None, cfg: LoopConfig) -> Validation | None:
    """Loss and token accuracy over the whole validation split; None without one. With several
    processes each takes its share and the sums are added up (every process runs as many forward
    passes: FSDP gathers layers collectively)."""
    if plan is None or not plan.items:
        return None
    ranks = parallel.ranks
    parallel.model.eval()
    total, count, correct = 0.0, 0, 0
    with torch.no_grad():
        for indices, counted in _share(plan.epoch(0), ranks):
            batch, _ = plan.tensors(indices, cfg.device)
            part = parallel.loss(batch)
            if counted:
                total, count, correct = total + float(part.loss_sum), count + part.count, correct + part.correct
    parallel.model.train()
    if ranks.distributed:
        total, count, correct = ranks.sum(total, count, correct)
    return Validation(total / count, correct / count) if count else None


def _share(batches: list[list[int]], ranks: Ranks) -> list[tuple[list[int], bool]]:
    """Rank r's micro-batches r, r + world, ...; ranks left short repeat the first one, not counted."""
    mine = [(b, True) for b in batches[ranks.rank :: ranks.world]]
    rounds = math.ceil(len(batches) / ranks.world)
    return mine + [(batches[0], False)] * (rounds - len(mine))


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean token loss
    accuracy: float  # share of labelled tokens predicted right
    grad_norm: float
    tokens: int  # real (non-padding) tokens


def _optimizer_step(parallel: ParallelModel, optimizer, scheduler, plan, batches, cfg) -> StepResult:
    """One optimizer step over `batches` (all processes' micro-batches); loss, accuracy and tokens
    are over all processes."""
    ranks = parallel.ranks
    tensors = [plan.tensors(indices, cfg.device) for indices in batches[ranks.rank :: ranks.world]]
    labelled = sum(int((b["labels"][:, 1:] != -100).sum()) for b, _ in tensors)
    if ranks.distributed:
        labelled = int(ranks.sum(labelled)[0])
    total_loss, correct = 0.0, 0
    for i, (batch, _) in enumerate(tensors):
        with parallel.accumulating(sync=i == len(tensors) - 1):
            part = parallel.loss(batch)
            if labelled:
                # DDP and FSDP average gradients over the ranks; times world, each token weighs the same.
                loss = part.loss_sum / labelled
                parallel.backward(loss * ranks.world if ranks.distributed else loss)
        total_loss += float(part.loss_sum.detach())
        correct += part.correct
    grad_norm = parallel.optimizer_step(optimizer, cfg.max_grad_norm)
    scheduler.step()
    tokens = sum(real for _, real in tensors)
    if ranks.distributed:
        total_loss, correct, tokens = ranks.sum(total_loss, correct, tokens)
    return StepResult(total_loss / max(labelled, 1), correct / max(labelled, 1), grad_norm, int(tokens))


def save_checkpoint(manager: CheckpointManager, parallel: ParallelModel, optimizer, scheduler, state: LoopState,
                    cfg: LoopConfig, val: Validation | None) -> None:
    """One process: today's format through `manager.save`. Several: each writes its shards into the
    same staging path, then `manager.save_sharded` stores them, rank 0's manifest last."""
    ranks = parallel.ranks
    metrics = {"val_loss": val.loss, "val_accuracy": val.accuracy} if val else {}
    cfg.staging_dir.mkdir(parents=True, exist_ok=True)
    if not ranks.distributed:
        folder = Path(tempfile.mkdtemp(prefix=f"step-{state.step}-", dir=cfg.staging_dir))
        try:
            write_checkpoint(folder, parallel.model, optimizer, scheduler, state)
            manager.save(state.step, folder, metrics)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    folder = Path(ranks.broadcast(tempfile.mkdtemp(prefix=f"step-{state.step}-", dir=cfg.staging_dir)
                                  if ranks.is_main else None))
    folder.mkdir(parents=True, exist_ok=True)  # ranks on other machines
    try:
        write_sharded_checkpoint(folder, parallel, optimizer, scheduler, state)
        manager.save_sharded(state.step, folder, metrics, ranks=ranks,
                             owns=lambda rel: owner_rank(rel) == ranks.rank)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resume_if_possible(manager: CheckpointManager, parallel: ParallelModel, optimizer, scheduler, cfg: LoopConfig) -> LoopState | None:
    """Restore the newest checkpoint that verifies, written by any number of processes; None when there
    is none (a fresh run). With several processes rank 0 chooses it, and the first process on each
    machine fetches it (on local disk: the directory itself)."""
    ranks = parallel.ranks
    found = manager.fetch_latest(dest=cfg.staging_dir) if ranks.is_main else None
    folder = found[1] if found else None
    if ranks.distributed:
        info = ranks.broadcast(found[0] if found else None)
        if info is None:
            return None
        if not ranks.is_main:  # rank 0 verified it; the others read the same directory or their machine's copy
            folder = manager.local_path(info)
            if folder is None:
                folder = manager.fetch(info, cfg.staging_dir) if ranks.local_rank == 0 else cfg.staging_dir / info.name
        ranks.barrier()  # every machine has its copy
    if folder is None:
        return None
    return read_any_checkpoint(Path(folder), parallel, optimizer, scheduler, seed=cfg.seed)


def train_loop(parallel: ParallelModel, optimizer, scheduler, plan: BatchPlan, val_plan: BatchPlan | None,
               state: LoopState, cfg: LoopConfig, manager: CheckpointManager, save_policy: SavePolicy,
               metrics: MetricsLog) -> LoopState:
    """Run optimizer steps from state.step to cfg.total_steps. Returns the final state.

    Rank 0 alone writes metrics.jsonl; every rank saves its part of each checkpoint. On a stop
    request (SIGTERM under `tunewise train`) the step under way finishes, a checkpoint is written for
    it, and TrainingStopped is raised: running the same job again resumes there. With several
    processes, saving and stopping are decided by all of them together (a request seen by any).
    """
    model, ranks = parallel.model, parallel.ranks
    if ranks.any_of(stop_requested())[0]:
        raise TrainingStopped(None)
    model.train()
    stream = _micro_batches(plan, state)
    started = time.monotonic() - state.elapsed_s
    first_step = state.step
    with TrainingProgress(cfg.total_steps, state.step) as progress:
        while state.step < cfg.total_steps:
            t0 = time.monotonic()
            batches = [next(stream) for _ in range(cfg.gradient_accumulation * ranks.world)]
            result = _optimizer_step(parallel, optimizer, scheduler, plan, batches, cfg)
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
            saving = ranks.any_of(last or save_policy.should_save(state.step))[0]
            evaluating = saving or (cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0)
            val = validate(parallel, val_plan, cfg) if evaluating else None
            if val is not None:
                record["val_loss"], record["val_accuracy"] = round(val.loss, 5), round(val.accuracy, 5)
                state.best_val_loss = val.loss if state.best_val_loss is None else min(state.best_val_loss, val.loss)
            if ranks.is_main:
                metrics.append(record)
            progress.update(state.step, loss=loss, tokens_per_s=tokens_per_s, val_loss=val.loss if val else None)
            # After the step is logged, as with one process: a request that came while it was logged stops here.
            stopping = ranks.any_of(stop_requested() and not last)[0]
            if saving or stopping:
                save_checkpoint(manager, parallel, optimizer, scheduler, state, cfg, val)
                save_policy.mark_saved(state.step)
            if stopping:
                raise TrainingStopped(state.step)
    return state

