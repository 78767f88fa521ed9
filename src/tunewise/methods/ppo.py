"""PPO: RLHF against a trained reward model with a KL penalty to the reference (Ouyang et al., 2022).

Stage 3 of RLHF: `method.reward_model` names a `reward` run. The loop is tunewise's own
(tunewise.align.ppo; TRL 1.x dropped its PPO trainer). Watch `kl_ref` against `reward_mean` in
metrics.jsonl: a reward that climbs while the KL runs away is the classic sign of reward hacking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from tunewise.methods import Method, register_method
from tunewise.methods._align_common import (
    ALIGN_LR_RANGE,
    ALIGN_LR_REASON,
    AlignOptions,
    align_warnings,
    build_adapter,
)


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


def train(spec: Any, run_dir: Path) -> Any:
    """PPO's trainer: our own loop, run by tunewise.align.ppo_job."""
    from tunewise.align.ppo_job import run_ppo_job

    return run_ppo_job(spec, run_dir)


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
        multi_process=False,  # our own PPO loop runs policy, value and reward model in one process
    )
)
