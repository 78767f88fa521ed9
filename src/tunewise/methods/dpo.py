"""DPO: direct preference optimization on chosen/rejected pairs (Rafailov et al., 2023), on TRL's DPOTrainer.

The policy learns to raise the log-probability ratio of chosen over rejected answers relative to a
reference policy; beta sets how far it may move. No reward model and no sampling during training.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunewise.methods import Method, register_method
from tunewise.methods._align_common import (
    ALIGN_LR_RANGE,
    ALIGN_LR_REASON,
    AlignOptions,
    align_warnings,
    build_adapter,
    load_frozen_reference,
    load_policy_model,
    peft_config_for,
    restore_adapter_dtype,
    trl_config,
)


class DpoConfig(AlignOptions):
    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference; 0.1 is usual, "
                        "lower lets the policy move further.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "apo_zero"] = Field(
        "sigmoid", description="sigmoid: the DPO loss; ipo: squared loss that resists overfitting on "
        "deterministic preferences; hinge: SLiC; robust: for noisy labels (with label_smoothing); apo_zero: APO.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Assumed share of flipped labels (robust loss).")
    sft_weight: float = Field(0.0, ge=0, description="Add this weight times the NLL of the chosen answer (RPO); "
                              "keeps the chosen likelihood from falling.")
    kl_warn: float | None = Field(None, gt=0, description="Warn when KL to the reference (nats per token) passes this.")


def dpo_warnings(cfg: DpoConfig) -> list[str]:
    out = align_warnings(cfg)
    if cfg.beta > 1:
        out.append(f"method.beta={cfg.beta:g} keeps the policy very close to the reference; 0.01-0.5 is typical")
    if cfg.loss_type == "robust" and cfg.label_smoothing == 0:
        out.append("method.loss_type=robust with label_smoothing=0 is plain DPO; set the share of noisy labels, e.g. 0.1")
    return out


def make_trainer(job: Any, data: Any, callbacks: list) -> Any:
    from trl import DPOConfig, DPOTrainer

    from tunewise.align.data import to_dataset

    cfg: DpoConfig = job.cfg
    loss_types = [cfg.loss_type] + (["sft"] if cfg.sft_weight else [])
    args = trl_config(DPOConfig, job.spec, job.run_dir, job.policy, beta=cfg.beta, loss_type=loss_types,
                      loss_weights=[1.0, cfg.sft_weight] if cfg.sft_weight else None,
                      label_smoothing=cfg.label_smoothing, max_length=job.spec.data.max_length)
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    job.ref_model = None if cfg.adapter != "none" else load_frozen_reference(job.base_dir, job.policy)
    trainer = DPOTrainer(
        model=model, ref_model=job.ref_model, args=args, processing_class=job.tokenizer,
        train_dataset=to_dataset(data.train),
        eval_dataset=to_dataset(data.validation) if data.validation else None,
        peft_config=peft_config_for(cfg), callbacks=callbacks,
    )
    restore_adapter_dtype(trainer.model, job.policy)
    return trainer


def train(spec: Any, run_dir: Any) -> Any:
    from tunewise.align.session import run_trl_job

    return run_trl_job(spec, run_dir, need="paired", make_trainer=make_trainer, kl_warn=spec.method_config().kl_warn)


METHOD = register_method(
    Method(
        name="dpo",
        description="Direct preference optimization on chosen/rejected pairs; no reward model, no sampling.",
        config_class=DpoConfig,
        build=build_adapter,
        default_learning_rate=5e-5,
        usual_learning_rate=ALIGN_LR_RANGE,
        learning_rate_reason=ALIGN_LR_REASON,
        kind="preference",
        trainer=train,
        check_options=dpo_warnings,
    )
)
