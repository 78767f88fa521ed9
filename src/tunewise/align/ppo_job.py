"""One PPO run, step by step: data, reward model, policy with its value head, resume, loop, artifact.

It is built from the same public pieces as the other trainers (align.session.start_align_job,
train.building_blocks, CheckpointManager.from_spec, MetricsLog); the loop itself is align.ppo.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.align.ppo import PPOSettings, ppo_loop, resume_ppo, total_ppo_steps
from tunewise.align.session import AlignJob, start_align_job, write_artifact
from tunewise.errors import SpecError
from tunewise.spec import JobSpec
from tunewise.train.building_blocks import RunResult, count_parameters, optimizer_and_scheduler, write_status
from tunewise.train.checkpoint import CheckpointManager, SavePolicy
from tunewise.train.metrics_log import MetricsLog

console = Console(stderr=True)


def run_ppo_job(spec: JobSpec, run_dir: Path) -> RunResult:
    """Train `spec` (method: ppo) against its reward model and fill `run_dir`; a re-run resumes."""
    from tunewise.align.reward_model import RewardScorer

    cfg = spec.method_config()
    if not cfg.reward_model:
        raise SpecError("method.reward_model: PPO needs a trained reward model",
                        hint="train one with method: reward on preference pairs, then give its run name or directory")
    job, data = start_align_job(spec, run_dir, "prompts")
    train_prompts = [row["prompt"] for row in data.train]
    val_prompts = [row["prompt"] for row in data.validation]

    scorer = RewardScorer.load(cfg.reward_model, job.policy)
    model = _build_policy(job)
    reference = _reference(job, model)
    prompts_per_step = spec.train.micro_batch_size * spec.train.gradient_accumulation
    total = total_ppo_steps(len(train_prompts), prompts_per_step, spec.train.epochs, spec.train.max_steps)
    optimizer, scheduler = optimizer_and_scheduler(spec, model, total)
    trainable, all_params = count_parameters(model.policy)
    console.print(f"method [bold]ppo[/]: trainable params: {trainable + model.value_head.weight.numel() + 1:,} "
                  f"(policy {trainable:,} + value head) || all params: {all_params:,}")

    manager = CheckpointManager.from_spec(spec.checkpoint, run_dir, metric="val_reward_mean", mode="max")
    manager.check_writable()  # fail now, not at the first save
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    state = resume_ppo(manager, model, optimizer, scheduler, run_dir / ".staging")
    resumed_from = state.step or None
    metrics.truncate_after(resumed_from or 0)  # rows a killed attempt logged past the checkpoint are redone
    if resumed_from:
        console.print(f"[green]resuming[/] from checkpoint at step {state.step} of {total}")
    write_status(run_dir, total_steps=total, step=state.step)
    state = ppo_loop(model, reference, job.tokenizer, scorer.score, optimizer, scheduler, train_prompts,
                     val_prompts, state, _settings(spec, cfg, total, prompts_per_step, run_dir), manager,
                     SavePolicy.from_spec(spec.checkpoint), metrics)
    artifact = write_artifact(job, model.policy)  # the value head stays in the checkpoints only
    console.print(f"artifact: {artifact}")
    shutil.rmtree(run_dir / ".staging", ignore_errors=True)
    return RunResult(run_dir, "completed", state.step, resumed_from=resumed_from)


def _settings(spec: JobSpec, cfg: Any, total: int, prompts_per_step: int, run_dir: Path) -> PPOSettings:
    return PPOSettings(
        total_steps=total, prompts_per_step=prompts_per_step, micro_batch_size=spec.train.micro_batch_size,
        ppo_epochs=cfg.ppo_epochs, kl_coef=cfg.kl_coef, clip_range=cfg.clip_range,
        value_clip_range=cfg.value_clip_range, vf_coef=cfg.vf_coef, gamma=cfg.gamma, lam=cfg.lam,
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, max_grad_norm=spec.train.max_grad_norm,
        kl_warn=cfg.kl_warn, eval_prompts=cfg.eval_prompts, seed=spec.train.seed, staging_dir=run_dir / ".staging",
    )


def _build_policy(job: AlignJob) -> Any:
    from trl.trainer.utils import disable_dropout_in_model

    from tunewise.align.ppo_rollout import PolicyWithValue
    from tunewise.methods._align_common import build_adapter, load_policy_model
    from tunewise.models.load import enable_activation_checkpointing

    cfg = job.cfg
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    model.config.use_cache = True  # every step samples from the policy
    model = build_adapter(model, cfg)
    if job.spec.train.gradient_checkpointing:
        enable_activation_checkpointing(model)
    # Dropout would make the sampled and the re-computed log-probs differ before any update.
    disable_dropout_in_model(model)
    wrapped = PolicyWithValue(model, model.config.get_text_config().hidden_size)
    wrapped.value_head.to(job.policy.device)  # the policy is placed already (a 4-bit one must not be moved)
    return wrapped


def _reference(job: AlignJob, model: Any):
    """A factory of context managers yielding the reference: adapter off, or a frozen copy of the base."""
    if job.cfg.adapter != "none":
        return lambda: _adapter_off(model.policy)
    from tunewise.methods._align_common import load_frozen_reference

    job.ref_model = load_frozen_reference(job.base_dir, job.policy)

    @contextmanager
    def frozen():
        yield job.ref_model

    return frozen


@contextmanager
def _adapter_off(policy: Any):
    with policy.disable_adapter():
        yield policy
