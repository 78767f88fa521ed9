"""DeepSpeed ZeRO-2 and ZeRO-3 for the supervised loop (`resources.engine: deepspeed`, the `deepspeed` extra).

The DeepSpeed config is generated from the job spec (`deepspeed_config`): micro-batch, accumulation
and the global batch, clipping, precision and the ZeRO stage; the optimizer and learning-rate
schedule stay tunewise's (AdamW, warmup and decay), handed to the engine. `DeepSpeedModel` gives the
training loop the same five operations as train/parallel.py's ParallelModel, so the loop reads the
same for every strategy.

Checkpoints are DeepSpeed's own partitioned files (each rank writes its ZeRO partition, stored by
`CheckpointManager.save_sharded` with the manifest last), so they resume on the same number of
processes only; FSDP2 (`engine: torch`, the default) resumes on any number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunewise.errors import CheckpointError, SpecError
from tunewise.train.distributed import Ranks
from tunewise.train.parallel import without_tied_copies
from tunewise.train.state_sharded import DEEPSPEED_DIR, owner_rank

CHECKPOINT_DIR, TAG = DEEPSPEED_DIR.split("/")  # save_checkpoint(CHECKPOINT_DIR, tag=TAG) writes DEEPSPEED_DIR


def deepspeed_config(*, micro_batch: int, accumulation: int, world: int, stage: int, precision: str,
                     max_grad_norm: float) -> dict[str, Any]:
    """DeepSpeed's JSON config for one job.

    Args:
        micro_batch, accumulation: sequences per forward pass and micro-batches per step, per process.
        world: processes (the global batch is micro_batch x accumulation x world).
        stage: ZeRO stage, 2 (gradients and optimizer states sharded) or 3 (parameters too).
        precision: the device policy's dtype name: bfloat16, float16 or float32.
        max_grad_norm: clipping norm (train.max_grad_norm).
    """
    if stage not in (2, 3):
        raise SpecError(f"resources.sharding: ZeRO stage {stage} is not 2 or 3")
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch * accumulation * world,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bfloat16"},
        "fp16": {"enabled": precision == "float16", "auto_cast": False},
        "zero_allow_untested_optimizer": True,  # tunewise's own torch AdamW
        "steps_per_print": 2**31 - 1,  # progress and metrics are tunewise's
        "wall_clock_breakdown": False,
    }


class DeepSpeedModel:
    """The DeepSpeed engine behind the loop's ParallelModel operations."""

    def __init__(self, model: Any, engine: Any, strategy: str, ranks: Ranks):
        self.model = model
        self.step_module = engine
        self.strategy = strategy
        self.ranks = ranks
        self.sharded = False  # DeepSpeed partitions on its own; no DTensors for DCP
        self.stage = 3 if strategy.endswith("zero3") else 2

    def loss(self, batch: dict[str, Any]) -> Any:  # LabelledLoss
        return self.step_module(batch)

    @contextlib.contextmanager
    def accumulating(self, sync: bool) -> Iterator[None]:
        yield  # DeepSpeed counts micro-batches itself and reduces at the step's boundary

    def backward(self, loss: Any) -> None:
        # The loss is already divided by the step's labelled tokens: no further division by accumulation.
        self.step_module.backward(loss, scale_wrt_gas=False)
        self.step_module.step()  # steps the optimizer on the step's last micro-batch only

    def optimizer_step(self, optimizer: Any, max_grad_norm: float) -> float:
        norm = self.step_module.get_global_grad_norm()  # clipped by the engine (gradient_clipping)
        return float(norm) if norm is not None else 0.0

    def full_state_dict(self, trainable_only: bool) -> dict[str, Any] | None:
        """ZeRO-3: whole tensors gathered on rank 0 (every rank takes part), {} elsewhere; ZeRO-2 keeps whole parameters."""
        if self.stage != 3:
            return None
        import deepspeed

        names = {n for n, p in self.model.named_parameters() if p.requires_grad or not trainable_only}
        params = [p for n, p in self.model.named_parameters() if n in names]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if not self.ranks.is_main:
                return {}
            state = without_tied_copies(self.model, self.model.state_dict())
            return {k: v.detach().cpu().clone() for k, v in state.items() if not trainable_only or k in names}

    def write_state(self, folder: Path) -> None:
        """Every rank writes its ZeRO partition under `folder/deepspeed/`."""
        self.step_module.save_checkpoint(str(folder / CHECKPOINT_DIR), tag=TAG)

    def read_state(self, folder: Path) -> None:
        written = len({owner_rank(f"{DEEPSPEED_DIR}/{p.name}") for p in (folder / DEEPSPEED_DIR).glob("zero_pp_rank_*")})
        if written != self.ranks.world:
            raise CheckpointError(f"checkpoint {folder} was written by DeepSpeed on {written} processes, not "
                                  f"{self.ranks.world}", hint=f"resume on {written} processes, or train with "
                                  "resources.engine: torch (FSDP2), whose checkpoints resume on any number")
        path, _ = self.step_module.load_checkpoint(str(folder / CHECKPOINT_DIR), tag=TAG,
                                                   load_lr_scheduler_states=False)
        if path is None:
            raise CheckpointError(f"DeepSpeed could not load the checkpoint in {folder}")


def deepspeed_model(parallel: Any, optimizer: Any, spec: Any, micro_batch: int, accumulation: int) -> DeepSpeedModel:
    """Hand the model (inside its loss module) and tunewise's optimizer to a DeepSpeed engine."""
    try:
        import deepspeed
    except ImportError:
        raise SpecError("resources.engine: deepspeed needs the deepspeed package",
                        hint="pip install 'tunewise[deepspeed]', or use engine: torch (DDP and FSDP2)") from None
    from tunewise.models import resolve_device_policy

    policy = resolve_device_policy(spec.train.device, spec.train.precision)
    stage = 3 if parallel.strategy.endswith("zero3") else 2
    config = deepspeed_config(micro_batch=micro_batch, accumulation=accumulation, world=parallel.ranks.world,
                              stage=stage, precision=str(policy.dtype).removeprefix("torch."),
                              max_grad_norm=spec.train.max_grad_norm)
    if stage == 3:
        # The loss reads the output head's weight directly (labels-only head): ZeRO-3 must gather it
        # for the loss module's forward, not only for the head's own.
        lm = parallel.model.get_base_model() if hasattr(parallel.model, "get_base_model") else parallel.model
        deepspeed.zero.register_external_parameter(parallel.step_module, lm.get_output_embeddings().weight)
    engine, *_ = deepspeed.initialize(model=parallel.step_module, optimizer=optimizer, config=config)
    return DeepSpeedModel(parallel.model, engine, parallel.strategy, parallel.ranks)
