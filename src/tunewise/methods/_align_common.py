"""Building blocks shared by the alignment methods (dpo, orpo, kto, reward, ppo, grpo).

Each alignment method holds its own few options plus an `adapter` choice with LoRA options; these
helpers turn that choice into a model to train, a reference policy, and a TRL config carrying the
job spec's `train:` section. The methods stay separate recipes; only the blocks are shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunewise.methods._lora_common import LoraOptions, lora_warnings

if TYPE_CHECKING:
    from tunewise.models.device import DevicePolicy
    from tunewise.spec import JobSpec

AdapterChoice = Literal["lora", "qlora", "none"]
# Alignment moves a policy a short distance from its reference: adapters take larger steps than
# full weights, but both sit well below SFT rates. 5e-7 (full) to 5e-4 (LoRA) is the span seen in practice.
ALIGN_LR_RANGE = (5e-7, 5e-4)
ALIGN_LR_REASON = (
    "preference and RL objectives push the policy away from its reference; too large a step collapses it "
    "(LoRA: 1e-5 to 1e-4; full weights: 5e-7 to 5e-6)"
)


class AlignOptions(BaseModel):
    """What every alignment method shares: which weights train, and the LoRA options when an adapter does."""

    model_config = ConfigDict(extra="forbid")
    adapter: AdapterChoice = Field(
        "lora",
        description="lora or qlora: train an adapter; the reference is the base with the adapter switched off. "
        "none: train every weight against a frozen copy of the base (twice the weights' memory).",
    )
    lora: LoraOptions = Field(default_factory=LoraOptions, description="Adapter options (lora and qlora).")


def align_warnings(cfg: AlignOptions) -> list[str]:
    return lora_warnings(cfg.lora) if cfg.adapter != "none" else []


def adapter_is_used(cfg: AlignOptions) -> bool:
    return cfg.adapter != "none"


# --- models --------------------------------------------------------------------------------------


def load_policy_model(base_dir: Path, policy: DevicePolicy, cfg: AlignOptions, *, seed: int) -> Any:
    """The causal LM to align, not yet wrapped in an adapter (TRL or `wrap_adapter` does that).

    qlora loads the base in 4-bit NF4 with double quantization and prepares it for k-bit training.
    """
    import torch

    from tunewise.models.load import load_causal_lm

    torch.manual_seed(seed)
    if cfg.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        from tunewise.methods.qlora import QloraConfig, quantization

        model = load_causal_lm(base_dir, policy, **quantization(QloraConfig(), policy.dtype))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = load_causal_lm(base_dir, policy)
    model.config.use_cache = False
    return model


def load_frozen_reference(base_dir: Path, policy: DevicePolicy) -> Any:
    """A second, frozen copy of the base: the reference policy when every weight trains."""
    from tunewise.models.load import load_causal_lm

    model = load_causal_lm(base_dir, policy).eval()
    model.requires_grad_(False)
    return model


def peft_config_for(cfg: AlignOptions, *, task_type: str = "CAUSAL_LM") -> Any:
    """The peft LoraConfig for an adapter choice, or None for full weights."""
    if not adapter_is_used(cfg):
        return None
    from peft import LoraConfig

    options = cfg.lora
    return LoraConfig(
        r=options.r,
        lora_alpha=options.resolved_alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        use_rslora=options.rslora,
        bias="none",
        task_type=task_type,
        # A reward model's scalar head starts random and must train along with the adapter.
        modules_to_save=["score"] if task_type == "SEQ_CLS" else None,
    )


def build_adapter(model: Any, cfg: AlignOptions, *, task_type: str = "CAUSAL_LM") -> Any:
    """The model to train: wrapped in the LoRA adapter, or with every weight trainable for adapter: none."""
    config = peft_config_for(cfg, task_type=task_type)
    if config is None:
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    from tunewise.train.fused_lora import fuse_lora_layers

    model = get_peft_model(model, config)
    fuse_lora_layers(model)  # the merged-weight training path where it applies (dropout 0, fp32)
    return model


def restore_adapter_dtype(model: Any, policy: DevicePolicy) -> None:
    """TRL casts QLoRA adapter weights to bf16; on CPU bf16 compute is many times slower, so follow the policy."""
    import torch

    if policy.device != "cpu" or policy.dtype != torch.float32:
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


# --- the TRL config ------------------------------------------------------------------------------


def trl_config(config_class: type, spec: JobSpec, run_dir: Path, policy: DevicePolicy, **method_fields: Any) -> Any:
    """A TRL config (DPOConfig, KTOConfig, ...) from the spec's `train:` section plus the method's own fields.

    Saving and evaluation are decided by tunewise's SavePolicy (see tunewise.align.callbacks), so
    TRL's own strategies are off. Precision follows the device policy: bf16 autocast only on CUDA
    that supports it; fp32 on CPU, where bf16 runs several times slower.
    """
    import torch

    train = spec.train
    on_cuda = policy.device == "cuda"
    fields: dict[str, Any] = dict(
        output_dir=str(run_dir / ".staging" / "trainer"),
        per_device_train_batch_size=train.micro_batch_size,
        per_device_eval_batch_size=train.micro_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        learning_rate=spec.resolved_learning_rate(),
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_ratio,  # transformers 5 reads a value below 1 as a share of the steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        data_seed=train.seed,
        bf16=on_cuda and policy.dtype == torch.bfloat16,
        fp16=on_cuda and policy.dtype == torch.float16,
        use_cpu=not on_cuda,
        gradient_checkpointing=train.gradient_checkpointing,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if spec.resources.world_size > 1:  # accelerate's DDP over the process group tunewise's worker joined
        fields.update(ddp_timeout=int(spec.resources.collective_timeout_s),
                      ddp_backend="nccl" if on_cuda else "gloo", ddp_find_unused_parameters=False)
    fields.update(method_fields)
    return config_class(**fields)
