"""Reward model: a scalar head on the base, trained on preference pairs (Bradley-Terry), on TRL's RewardTrainer.

The first half of RLHF: the trained model scores (prompt, answer) and drives `ppo` and `grpo`
(`method.reward_model: <this run>`), judges synthesized preferences, and scores win-rates.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tunewise.methods import Method, register_method
from tunewise.methods._align_common import (
    AlignOptions,
    align_warnings,
    build_adapter,
    peft_config_for,
    restore_adapter_dtype,
    trl_config,
)


class RewardConfig(AlignOptions):
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="Penalty on the mean reward so scores stay centred on 0 (0.01 is usual); off by default.")


def load_reward_base(base_dir: Any, policy: Any, cfg: AlignOptions, *, seed: int, tokenizer: Any) -> Any:
    """The base model with a fresh one-output score head (AutoModelForSequenceClassification, num_labels=1)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"dtype": policy.dtype, "num_labels": 1}
    if cfg.adapter == "qlora":
        from tunewise.methods.qlora import QloraConfig, quantization

        kwargs.update(quantization(QloraConfig(), policy.dtype))
        kwargs["device_map"] = {"": policy.device if policy.device != "cuda" else 0}
    torch.manual_seed(seed)  # the score head's initialisation is part of the run's identity
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), **kwargs)
    if cfg.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(policy.device)
    # The score is read at the last non-padding token, so the model must know the padding id.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def make_trainer(job: Any, data: Any, callbacks: list) -> Any:
    from trl import RewardConfig as TrlRewardConfig
    from trl import RewardTrainer

    from tunewise.align.data import to_dataset

    cfg: RewardConfig = job.cfg
    args = trl_config(TrlRewardConfig, job.spec, job.run_dir, job.policy, max_length=job.spec.data.max_length,
                      center_rewards_coefficient=cfg.center_rewards_coefficient)
    model = load_reward_base(job.base_dir, job.policy, cfg, seed=job.spec.train.seed, tokenizer=job.tokenizer)
    trainer = RewardTrainer(
        model=model, args=args, processing_class=job.tokenizer,
        train_dataset=to_dataset(data.train),
        eval_dataset=to_dataset(data.validation) if data.validation else None,
        peft_config=peft_config_for(cfg, task_type="SEQ_CLS"), callbacks=callbacks,
    )
    restore_adapter_dtype(trainer.model, job.policy)
    return trainer


def train(spec: Any, run_dir: Any) -> Any:
    from tunewise.align.session import run_trl_job

    # A reward model has no reference policy: there is no KL to measure.
    return run_trl_job(spec, run_dir, need="paired", make_trainer=make_trainer, kl_probe=False)


METHOD = register_method(
    Method(
        name="reward",
        description="Reward model from preference pairs: a scalar score head on the base (RLHF stage 2).",
        config_class=RewardConfig,
        build=lambda model, cfg: build_adapter(model, cfg, task_type="SEQ_CLS"),
        default_learning_rate=1e-4,
        usual_learning_rate=(1e-6, 1e-3),
        learning_rate_reason="a fresh score head needs a real step, but large ones overfit a few thousand pairs "
        "within an epoch (LoRA: 5e-5 to 2e-4; full weights: 1e-5)",
        kind="preference",
        trainer=train,
        check_options=align_warnings,
        eval_skip_reason="a reward model scores answers and generates none, so perplexity and generation metrics "
        "do not apply; its held-out preference accuracy is val_preference_accuracy in metrics.jsonl",
    )
)
