"""GRPO: group-relative policy optimization (Shao et al., 2024), on TRL's GRPOTrainer.

For each prompt the policy samples a group of answers; each answer's advantage is its reward
minus the group's mean (over the group's spread), so no value model is needed. Rewards come from
a trained `reward` run, from scoring functions named `module:function`, or both (summed, weighted).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tunewise.errors import SpecError
from tunewise.methods import Method, register_method
from tunewise.methods._align_common import (
    ALIGN_LR_RANGE,
    ALIGN_LR_REASON,
    AlignOptions,
    align_warnings,
    build_adapter,
    load_policy_model,
    peft_config_for,
    restore_adapter_dtype,
    trl_config,
)


class GrpoConfig(AlignOptions):
    reward_model: str | None = Field(None, description="Run directory or name of a `method: reward` run scoring answers.")
    reward_functions: list[str] = Field(
        default_factory=list, description="Scoring functions `module:function` or `file.py:function`, "
        "each score(prompt, answer) -> float.")
    reward_weights: list[float] | None = Field(None, description="One weight per reward (the reward model first); default all 1.")
    num_generations: int = Field(4, ge=2, description="Answers sampled per prompt (the group); 4-16 is usual.")
    max_completion_length: int = Field(128, ge=1, description="Longest sampled answer, in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature; the group needs diverse answers.")
    beta: float = Field(0.04, ge=0, description="KL penalty to the reference; 0 drops the reference (and its KL metric).")
    epsilon: float = Field(0.2, gt=0, lt=1, description="PPO-style clipping of the probability ratio.")
    num_iterations: int = Field(1, ge=1, description="Updates per batch of samples (mu in the paper).")
    kl_warn: float | None = Field(None, gt=0, description="Warn when KL to the reference (nats per token) passes this.")

    @model_validator(mode="after")
    def _weights_match_rewards(self) -> GrpoConfig:
        count = int(bool(self.reward_model)) + len(self.reward_functions)
        if self.reward_weights is not None and len(self.reward_weights) != count:
            raise ValueError(f"reward_weights has {len(self.reward_weights)} values for {count} rewards")
        return self


def reward_sources(cfg: GrpoConfig, policy: Any) -> tuple[list[Any], list[Any]]:
    """(reward functions in TRL's form, their processing classes): the reward model first, then functions."""
    from tunewise.align.reward_model import load_reward_model
    from tunewise.align.scoring import call_score, load_score_function

    funcs: list[Any] = []
    tokenizers: list[Any] = []
    if cfg.reward_model:
        model, tokenizer = load_reward_model(cfg.reward_model, policy)
        model.config._name_or_path = "reward_model"  # TRL names the metric after it: rewards/reward_model/mean
        funcs.append(model)
        tokenizers.append(tokenizer)
    for name in cfg.reward_functions:
        fn = load_score_function(name, field="method.reward_functions")

        def reward(prompts, completions, _fn=fn, _name=name, **kwargs):
            return [call_score(_fn, p, c[-1]["content"] if isinstance(c, list) else c, _name)
                    for p, c in zip(prompts, completions)]

        reward.__name__ = name.rpartition(":")[2]
        funcs.append(reward)
        tokenizers.append(None)
    return funcs, tokenizers


def make_trainer(job: Any, data: Any, callbacks: list) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    cfg: GrpoConfig = job.cfg
    if not cfg.reward_model and not cfg.reward_functions:
        raise SpecError("method.reward_model / method.reward_functions: GRPO needs a reward",
                        hint="name a reward run (reward_model: RUN) and/or rules (reward_functions: [module:function])")
    batch = job.spec.train.micro_batch_size * job.spec.train.gradient_accumulation
    if batch % cfg.num_generations:
        raise SpecError(
            f"train.micro_batch_size * train.gradient_accumulation = {batch} answers per step is not a multiple of "
            f"method.num_generations={cfg.num_generations}: every prompt's group must fit in one step",
            hint=f"e.g. train.micro_batch_size={cfg.num_generations}")
    funcs, tokenizers = reward_sources(cfg, job.policy)
    args = trl_config(GRPOConfig, job.spec, job.run_dir, job.policy, num_generations=cfg.num_generations,
                      max_completion_length=cfg.max_completion_length, temperature=cfg.temperature,
                      beta=cfg.beta, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
                      reward_weights=cfg.reward_weights, top_k=0, top_p=1.0)
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    model.config.use_cache = True  # GRPO samples from the policy at every step
    trainer = GRPOTrainer(
        model=model, reward_funcs=funcs, args=args, processing_class=job.tokenizer,
        reward_processing_classes=tokenizers, train_dataset=Dataset.from_list(data.train),
        peft_config=peft_config_for(cfg), callbacks=callbacks,
    )
    restore_adapter_dtype(trainer.model, job.policy)
    return trainer


def train(spec: Any, run_dir: Any) -> Any:
    from tunewise.align.session import run_trl_job

    # GRPO measures KL on its own samples (when beta > 0); validation would mean sampling every
    # held-out prompt, so the held-out prompts are kept for win-rate instead.
    return run_trl_job(spec, run_dir, need="prompts", make_trainer=make_trainer, kl_probe=False, evaluate=False,
                       kl_warn=spec.method_config().kl_warn, renames={"kl": "kl_ref", "reward": "reward_mean"})


METHOD = register_method(
    Method(
        name="grpo",
        description="Group-relative policy optimization: sampled groups scored by a reward model or rule functions.",
        config_class=GrpoConfig,
        build=build_adapter,
        default_learning_rate=1e-5,
        usual_learning_rate=ALIGN_LR_RANGE,
        learning_rate_reason=ALIGN_LR_REASON,
        kind="rl",
        trainer=train,
        check_options=align_warnings,
    )
)
