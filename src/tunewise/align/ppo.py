"""The PPO loop for RLHF: a plain recipe that reads top to bottom.

TRL 1.x no longer ships a PPO trainer, so tunewise keeps its own: each step samples answers for a
batch of prompts, scores them with the reward model, shapes per-token rewards with the KL penalty,
computes GAE advantages, then runs `ppo_epochs` clipped policy + value updates over that batch.
Checkpoints hold the trainable weights (adapter or full, plus the value head), optimizer, scheduler,
RNG and data position, so a killed run resumes exactly.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from tunewise.align.callbacks import significant
from tunewise.align.ppo_rollout import (
    PolicyWithValue,
    Rollout,
    add_advantages,
    collect,
    masked_mean,
    shape_rewards,
    token_logprobs,
)
from tunewise.train.checkpoint import CheckpointManager, SavePolicy
from tunewise.train.metrics_log import MetricsLog, peak_memory_mb
from tunewise.train.progress import TrainingProgress
from tunewise.train.state import LoopState, read_checkpoint, write_checkpoint

console = Console(stderr=True)


@dataclass(frozen=True)
class PPOSettings:
    total_steps: int
    prompts_per_step: int
    micro_batch_size: int
    ppo_epochs: int
    kl_coef: float
    clip_range: float
    value_clip_range: float
    vf_coef: float
    gamma: float
    lam: float
    max_new_tokens: int
    temperature: float
    max_grad_norm: float
    kl_warn: float | None
    eval_prompts: int
    seed: int
    staging_dir: Path


def total_ppo_steps(n_prompts: int, prompts_per_step: int, epochs: float, max_steps: int | None) -> int:
    if max_steps:
        return max_steps
    return max(1, math.ceil(math.ceil(n_prompts / prompts_per_step) * epochs))


def _prompt_batches(prompts: list, state: LoopState, size: int, seed: int):
    """Prompt batches from the saved data position on; reshuffled each epoch with the seed."""
    while True:
        order = list(range(len(prompts)))
        random.Random(seed * 1000 + state.epoch).shuffle(order)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        while state.batch_in_epoch < len(batches):
            indices = batches[state.batch_in_epoch]
            state.batch_in_epoch += 1
            yield [prompts[i] for i in indices]
        state.epoch += 1
        state.batch_in_epoch = 0


def ppo_update(model: PolicyWithValue, optimizer: Any, rollout: Rollout, s: PPOSettings) -> dict[str, float]:
    """`ppo_epochs` optimizer steps, each over the whole batch in micro-batches; returns mean losses."""
    model.train()
    n = rollout.sequences.shape[0]
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0, "grad_norm": 0.0}
    generator = torch.Generator().manual_seed(s.seed)
    for _ in range(s.ppo_epochs):
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, s.micro_batch_size):
            idx = order[start : start + s.micro_batch_size]
            part = _micro_batch_loss(model, rollout, idx, s)
            (part["loss"] * len(idx) / n).backward()
            for key in ("policy_loss", "value_loss", "clip_frac", "approx_kl"):
                stats[key] += float(part[key]) * len(idx) / n / s.ppo_epochs
        params = [p for p in model.parameters() if p.requires_grad]
        stats["grad_norm"] += float(torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)) / s.ppo_epochs
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return stats


def _micro_batch_loss(model: PolicyWithValue, r: Rollout, idx: list[int], s: PPOSettings) -> dict[str, torch.Tensor]:
    mask = r.answer_mask[idx].float()
    logits, values = model(r.sequences[idx], r.attention_mask[idx])
    logprobs = token_logprobs(logits, r.answer_tokens[idx], r.prompt_len, s.temperature)
    values = values[:, r.prompt_len - 1 : -1]
    ratio = torch.exp(logprobs - r.logprobs[idx])
    advantages = r.advantages[idx]
    clipped_ratio = ratio.clamp(1 - s.clip_range, 1 + s.clip_range)
    policy_loss = masked_mean(torch.max(-advantages * ratio, -advantages * clipped_ratio), mask)
    old_values, returns = r.values[idx], r.returns[idx]
    clipped_values = old_values + (values - old_values).clamp(-s.value_clip_range, s.value_clip_range)
    value_loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped_values - returns) ** 2), mask)
    with torch.no_grad():
        clip_frac = masked_mean(((ratio - 1).abs() > s.clip_range).float(), mask)
        approx_kl = masked_mean(0.5 * (logprobs - r.logprobs[idx]) ** 2, mask)
    return {"loss": policy_loss + s.vf_coef * value_loss, "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(), "clip_frac": clip_frac, "approx_kl": approx_kl}


def _save(manager: CheckpointManager, model, optimizer, scheduler, state: LoopState, s: PPOSettings,
          metrics: dict[str, float]) -> None:
    s.staging_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"step-{state.step}-", dir=s.staging_dir))
    try:
        write_checkpoint(folder, model, optimizer, scheduler, state)
        manager.save(state.step, folder, metrics)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def held_out_reward(model: PolicyWithValue, tokenizer: Any, prompts: list, score: Callable, s: PPOSettings) -> float | None:
    """Mean score of greedy answers to up to `eval_prompts` held-out prompts (ranks checkpoints)."""
    from tunewise.models.generate import generate_replies

    chosen = prompts[: s.eval_prompts]
    if not chosen:
        return None
    model.eval()
    answers = generate_replies(model.policy, tokenizer, chosen, max_new_tokens=s.max_new_tokens)
    return sum(score(chosen, answers)) / len(answers)


def ppo_loop(model: PolicyWithValue, reference: Callable, tokenizer: Any, score: Callable, optimizer, scheduler,
             train_prompts: list, val_prompts: list, state: LoopState, s: PPOSettings, manager: CheckpointManager,
             save_policy: SavePolicy, metrics: MetricsLog) -> LoopState:
    """Run PPO steps from state.step to s.total_steps; one metrics line and possibly a checkpoint per step."""
    batches = _prompt_batches(train_prompts, state, s.prompts_per_step, s.seed)
    started = time.monotonic() - state.elapsed_s
    warned = False
    with TrainingProgress(s.total_steps, state.step) as progress:
        while state.step < s.total_steps:
            t0 = time.monotonic()
            prompts = next(batches)
            rollout = collect(model, reference, tokenizer, prompts, score, max_new_tokens=s.max_new_tokens,
                              temperature=s.temperature)
            rewards, kl = shape_rewards(rollout, s.kl_coef)
            add_advantages(rollout, rewards, gamma=s.gamma, lam=s.lam)
            lr = scheduler.get_last_lr()[0]  # the rate this step's updates used
            losses = ppo_update(model, optimizer, rollout, s)
            scheduler.step()
            state.step += 1
            tokens = int(rollout.answer_mask.sum())
            state.tokens_seen += tokens
            state.elapsed_s = time.monotonic() - started
            record = _record(state.step, rollout, kl, losses, lr, tokens / max(time.monotonic() - t0, 1e-9))
            if s.kl_warn is not None and record["kl_ref"] > s.kl_warn:
                record["kl_warning"] = True
                if not warned:
                    warned = True
                    console.print(f"[yellow]warning:[/] step {state.step}: KL to the reference is "
                                  f"{record['kl_ref']:.3g} nats per token, past kl_warn={s.kl_warn:g} while the mean "
                                  f"reward is {record['reward_mean']:.3g}: the policy may be gaming the reward model "
                                  "(reward hacking). Read samples; raise kl_coef or stop early.", highlight=False)
            saving = state.step == s.total_steps or save_policy.should_save(state.step)
            if saving:
                val = held_out_reward(model, tokenizer, val_prompts, score, s)
                if val is not None:
                    record["val_reward_mean"] = significant(val)
            metrics.append(record)
            progress.update(state.step, loss=record["policy_loss"], tokens_per_s=record["tokens_per_s"])
            if saving:
                _save(manager, model, optimizer, scheduler, state, s,
                      {"val_reward_mean": record["val_reward_mean"]} if "val_reward_mean" in record else {})
                save_policy.mark_saved(state.step)
    return state


def _record(step: int, r: Rollout, kl: torch.Tensor, losses: dict, lr: float, tokens_per_s: float) -> dict[str, Any]:
    mask = r.answer_mask.float()
    device = "cuda" if r.sequences.is_cuda else "cpu"
    # The penalty uses log pi - log pi_ref (k1); the reported KL uses k3 = (ratio - 1) - log ratio,
    # also unbiased but never negative and less noisy on a few samples (the estimator GRPO reports).
    log_ratio = (r.ref_logprobs - r.logprobs) * mask
    k3 = (torch.exp(log_ratio) - 1 - log_ratio) * mask
    return {
        "step": step,
        "reward_mean": significant(r.scores.mean()),
        "reward_std": significant(r.scores.std()) if len(r.scores) > 1 else 0.0,
        "kl_ref": significant(k3.sum() / mask.sum().clamp(min=1)),  # nats per answer token
        "kl_penalty": significant(kl.sum(1).mean()),  # mean sum of log pi - log pi_ref per answer
        **{k: significant(v) for k, v in losses.items()},
        "answer_tokens_mean": round(float(mask.sum(1).mean()), 2),
        "lr": lr,
        "tokens_per_s": round(tokens_per_s, 1),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


def resume_ppo(manager: CheckpointManager, model, optimizer, scheduler, staging_dir: Path) -> LoopState:
    """Restore the newest checkpoint that verifies; a fresh state (step 0) when there is none."""
    fetched = manager.fetch_latest(dest=staging_dir)
    if fetched is None:
        return LoopState()
    return read_checkpoint(Path(fetched[1]), model, optimizer, scheduler)
