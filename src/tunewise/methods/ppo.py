"""PPO: RLHF against a trained reward model with a KL penalty to the reference (Ouyang et al., 2022).

Stage 3 of RLHF: `method.reward_model` names a `reward` run. The loop is tunewise's own
(tunewise.align.ppo; TRL 1.x dropped its PPO trainer). Watch `kl_ref` against `reward_mean` in
metrics.jsonl: a reward that climbs while the KL runs away is the classic sign of reward hacking.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console

from tunewise.errors import SpecError
from tunewise.methods import Method, register_method
from tunewise.methods._align_common import (
    ALIGN_LR_RANGE,
    ALIGN_LR_REASON,
    AlignOptions,
    align_warnings,
    build_adapter,
    load_frozen_reference,
    load_policy_model,
)

console = Console(stderr=True)


class PpoConfig(AlignOptions):
    reward_model: str | None = Field(None, description="Run directory or name of a `method: reward` run that "
                                     "scores answers (required).")
    kl_coef: float = Field(0.05, ge=0, description="Per-token KL penalty to the reference in the reward.")
    kl_warn: float | None = Field(0.3, gt=0, description="Warn when KL to the reference passes this many nats "
                                  "per answer token (a sign of reward hacking); null to disable.")
    ppo_epochs: int = Field(4, ge=1, description="Optimization passes over each batch of samples.")
    clip_range: float = Field(0.2, gt=0, lt=1, description="Clipping of the policy probability ratio.")
    value_clip_range: float = Field(0.2, gt=0, description="Clipping of value updates around the sampled values.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss.")
    gamma: float = Field(1.0, gt=0, le=1, description="Discount over answer tokens.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    max_new_tokens: int = Field(64, ge=1, description="Longest sampled answer, in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (log-probs use the same one).")
    eval_prompts: int = Field(16, ge=0, description="Held-out prompts answered and scored at each checkpoint.")


@contextmanager
def _adapter_off(policy: Any):
    with policy.disable_adapter():
        yield policy


def train(spec: Any, run_dir: Path) -> Any:
    from tunewise.align.data import load_align_data, write_data_files
    from tunewise.align.ppo import ppo_loop, resume_ppo, total_ppo_steps
    from tunewise.align.reward_model import RewardScorer
    from tunewise.align.session import AlignJob, require_fit, write_artifact
    from tunewise.models import resolve_base_model, resolve_device_policy
    from tunewise.models.load import load_tokenizer
    from tunewise.train.checkpoint import CheckpointManager, SavePolicy
    from tunewise.train.metrics_log import MetricsLog
    from tunewise.train.run import RunResult, seed_everything, write_status
    from tunewise.train.session import TrainingSession, count_parameters
    from tunewise.train.state import LoopState

    cfg: PpoConfig = spec.method_config()
    if not cfg.reward_model:
        raise SpecError("method.reward_model: PPO needs a trained reward model",
                        hint="train one with method: reward on preference pairs, then give its run name or directory")
    seed_everything(spec.train.seed)
    base_dir = resolve_base_model(spec.base_model)
    policy = resolve_device_policy(spec.train.device, spec.train.precision)
    job = AlignJob(spec, run_dir, cfg, policy, base_dir, load_tokenizer(base_dir))
    data = load_align_data(spec, job.tokenizer, "ppo", "prompts")
    write_data_files(run_dir, data)
    train_prompts = [row["prompt"] for row in data.train]
    val_prompts = [row["prompt"] for row in data.validation]
    require_fit(spec, base_dir, policy)

    scorer = RewardScorer.load(cfg.reward_model, policy)
    model = _build_policy(job)
    reference = _reference(job, model)
    prompts_per_step = spec.train.micro_batch_size * spec.train.gradient_accumulation
    total = total_ppo_steps(len(train_prompts), prompts_per_step, spec.train.epochs, spec.train.max_steps)
    optimizer, scheduler = TrainingSession(spec, run_dir).optimizer_and_scheduler(model, total)
    trainable, all_params = count_parameters(model.policy)
    console.print(f"method [bold]ppo[/]: trainable params: {trainable + model.value_head.weight.numel() + 1:,} "
                  f"(policy {trainable:,} + value head) || all params: {all_params:,}")

    manager = CheckpointManager(spec.checkpoint.dir or str(run_dir / "checkpoints"), keep_best=spec.checkpoint.keep_best,
                                keep_last=spec.checkpoint.keep_last, metric="val_reward_mean", mode="max")
    manager.check_writable()
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    state = resume_ppo(manager, model, optimizer, scheduler, run_dir / ".staging")
    resumed_from = state.step if state else None
    metrics.truncate_after(resumed_from or 0)  # rows a killed attempt logged past the checkpoint are redone
    if state is not None:
        console.print(f"[green]resuming[/] from checkpoint at step {state.step} of {total}")
    state = state or LoopState()
    write_status(run_dir, total_steps=total, step=state.step)
    settings = _settings(spec, cfg, total, prompts_per_step, run_dir)
    state = ppo_loop(model, reference, job.tokenizer, scorer.score, optimizer, scheduler, train_prompts,
                     val_prompts, state, settings, manager, SavePolicy.from_spec(spec.checkpoint), metrics)
    artifact = write_artifact(job, model.policy)  # the value head stays in the checkpoints only
    console.print(f"artifact: {artifact}")
    shutil.rmtree(run_dir / ".staging", ignore_errors=True)
    return RunResult(run_dir, "completed", state.step, resumed_from=resumed_from)


def _settings(spec: Any, cfg: PpoConfig, total: int, prompts_per_step: int, run_dir: Path) -> Any:
    from tunewise.align.ppo import PPOSettings

    return PPOSettings(
        total_steps=total, prompts_per_step=prompts_per_step, micro_batch_size=spec.train.micro_batch_size,
        ppo_epochs=cfg.ppo_epochs, kl_coef=cfg.kl_coef, clip_range=cfg.clip_range,
        value_clip_range=cfg.value_clip_range, vf_coef=cfg.vf_coef, gamma=cfg.gamma, lam=cfg.lam,
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, max_grad_norm=spec.train.max_grad_norm,
        kl_warn=cfg.kl_warn, eval_prompts=cfg.eval_prompts, seed=spec.train.seed, staging_dir=run_dir / ".staging",
    )


def _build_policy(job: Any) -> Any:
    from trl.trainer.utils import disable_dropout_in_model

    from tunewise.align.ppo_rollout import PolicyWithValue

    cfg = job.cfg
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    model.config.use_cache = True  # every step samples from the policy
    model = build_adapter(model, cfg)
    if job.spec.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # Dropout would make the sampled and the re-computed log-probs differ before any update.
    disable_dropout_in_model(model)
    wrapped = PolicyWithValue(model, model.config.get_text_config().hidden_size)
    wrapped.value_head.to(job.policy.device)  # the policy is placed already (a 4-bit one must not be moved)
    return wrapped


def _reference(job: Any, model: Any):
    """A factory of context managers yielding the reference: adapter off, or a frozen copy of the base."""
    if job.cfg.adapter != "none":
        return lambda: _adapter_off(model.policy)
    job.ref_model = load_frozen_reference(job.base_dir, job.policy)

    @contextmanager
    def frozen():
        yield job.ref_model

    return frozen


METHOD = register_method(
    Method(
        name="ppo",
        description="RLHF with PPO: samples scored by a trained reward model, KL penalty to the reference.",
        config_class=PpoConfig,
        build=build_adapter,
        default_learning_rate=1e-5,
        usual_learning_rate=ALIGN_LR_RANGE,
        learning_rate_reason=ALIGN_LR_REASON,
        kind="rl",
        trainer=train,
        check_options=align_warnings,
    )
)
