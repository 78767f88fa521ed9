"""ORPO: odds-ratio preference optimization (Hong et al., 2024), on TRL's experimental ORPOTrainer.

One loss does SFT on the chosen answer and pushes its odds above the rejected answer's, with no
reference model at all: less memory than DPO, and it can start from a base that was never SFT'd.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

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


class OrpoConfig(AlignOptions):
    beta: float = Field(0.1, gt=0, description="Weight of the odds-ratio term against the SFT loss "
                        "(lambda in the paper; 0.1 is its default).")


def make_trainer(job: Any, data: Any, callbacks: list) -> Any:
    import warnings

    with warnings.catch_warnings():  # "experimental" notice: tunewise pins the TRL API it uses
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from tunewise.align.data import to_dataset

    cfg: OrpoConfig = job.cfg
    args = trl_config(ORPOConfig, job.spec, job.run_dir, job.policy, beta=cfg.beta,
                      max_length=job.spec.data.max_length, remove_unused_columns=False)
    model = load_policy_model(job.base_dir, job.policy, cfg, seed=job.spec.train.seed)
    job.ref_model = None  # reference-free: with an adapter the probe still measures KL to the base
    trainer = ORPOTrainer(
        model=model, args=args, processing_class=job.tokenizer,
        train_dataset=to_dataset(data.train),
        eval_dataset=to_dataset(data.validation) if data.validation else None,
        peft_config=peft_config_for(cfg), callbacks=callbacks,
    )
    restore_adapter_dtype(trainer.model, job.policy)
    return trainer


def train(spec: Any, run_dir: Any) -> Any:
    from tunewise.align.session import run_trl_job

    # TRL's ORPO trainer does not hand a row's tools to the chat template: tools are written as text.
    return run_trl_job(spec, run_dir, need="paired", make_trainer=make_trainer, row_tools=False)


METHOD = register_method(
    Method(
        name="orpo",
        description="Odds-ratio preference optimization: SFT and preference in one loss, no reference model.",
        config_class=OrpoConfig,
        build=build_adapter,
        default_learning_rate=5e-5,
        usual_learning_rate=ALIGN_LR_RANGE,
        learning_rate_reason=ALIGN_LR_REASON,
        kind="preference",
        trainer=train,
        check_options=align_warnings,
    )
)
