"""KTO: Kahneman-Tversky optimization (Ethayarajh et al., 2024), on TRL's KTOTrainer.

Learns from single answers labelled desirable or undesirable, so thumbs-up/down feedback works
without pairing. Paired data is accepted too: each chosen answer counts as desirable, each
rejected one as undesirable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

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
    peft_config_for,
    restore_adapter_dtype,
    trl_config,
)


class KtoConfig(AlignOptions):
    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference.")
    desirable_weight: float = Field(1.0, gt=0, description="Loss weight of desirable rows; raise it when they are "
                                    "rarer than undesirable ones (the paper keeps the weighted ratio in 1-4/3).")
    undesirable_weight: float = Field(1.0, gt=0, description="Loss weight of undesirable rows.")
    loss_type: Literal["kto", "apo_zero_unpaired"] = Field("kto", description="kto, or the unpaired APO loss.")
    kl_warn: float | None = Field(None, gt=0, description="Warn when KL to the reference (nats per token) passes this.")


def make_trainer(job: Any, data: Any, callbacks: list) -> Any:
    from trl import KTOConfig, KTOTrainer

    from tunewise.align.data import to_dataset, unpair

    cfg: KtoConfig = job.cfg
    if job.spec.train.micro_batch_size < 2:
        raise SpecError("train.micro_batch_size=1: KTO estimates its KL reference point from mismatched pairs "
                        "within a batch", hint="set train.micro_batch_size to 2 or more (4-8 is usual)")
    args = trl_config(KTOConfig, job.spec, job.run_dir, job.policy, beta=cfg.beta, loss_type=cfg.loss_type,
                      desirable_weight=cfg.desirable_weight, undesirable_weight=cfg.undesirable_weight,
                      max_length=job.spec.data.max_length)
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    job.ref_model = None if cfg.adapter != "none" else load_frozen_reference(job.base_dir, job.policy)
    trainer = KTOTrainer(
        model=model, ref_model=job.ref_model, args=args, processing_class=job.tokenizer,
        train_dataset=to_dataset(unpair(data.train)),
        eval_dataset=to_dataset(unpair(data.validation)) if data.validation else None,
        peft_config=peft_config_for(cfg), callbacks=callbacks,
    )
    restore_adapter_dtype(trainer.model, job.policy)
    return trainer


def train(spec: Any, run_dir: Any) -> Any:
    from tunewise.align.session import run_trl_job

    # TRL's "kl" is KTO's batch estimate of the reference point, not the probe's KL on held-out answers.
    return run_trl_job(spec, run_dir, need="paired_or_unpaired", make_trainer=make_trainer,
                       kl_warn=spec.method_config().kl_warn, renames={"kl": "kto_reference_kl"})


METHOD = register_method(
    Method(
        name="kto",
        description="Kahneman-Tversky optimization: learns from answers labelled good or bad, no pairs needed.",
        config_class=KtoConfig,
        build=build_adapter,
        default_learning_rate=5e-5,
        usual_learning_rate=ALIGN_LR_RANGE,
        learning_rate_reason=ALIGN_LR_REASON,
        kind="preference",
        trainer=train,
        check_options=align_warnings,
    )
)
