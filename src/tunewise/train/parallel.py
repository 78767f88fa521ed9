"""Data parallel training: DDP for adapters, FSDP2 when the model (or its optimizer) must be sharded.

The loss is computed by a small module around the model (`_LossModule`), and that module is what
DDP or FSDP wrap: the loss reaches into the decoder and the output head directly (labels-only head),
so the wrapper's hooks must sit above the whole computation, not on the model's own forward.

Strategies (see `choose_strategy`):
- `single`: one process, the model as it is (today's path, bit for bit).
- `ddp`: every process holds the whole model; gradients are all-reduced (torch DDP).
- `fsdp-zero2`: FSDP2 `fully_shard` with parameters kept gathered from forward to backward: gradients
  and optimizer states are sharded, parameters between steps too (ZeRO-2's memory class).
- `fsdp`: FSDP2 resharding after forward as well (ZeRO-3).
- `deepspeed-zero2`, `deepspeed-zero3`: DeepSpeed's engine (tunewise.scale.deepspeed), GPUs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from tunewise.errors import SpecError
from tunewise.train.distributed import Ranks
from tunewise.train.loss import LabelledLoss, labelled_loss_sum

STRATEGIES = ("single", "ddp", "fsdp-zero2", "fsdp", "deepspeed-zero2", "deepspeed-zero3")


def choose_strategy(sharding: str, engine: str, *, world: int, adapter: bool, planned: str | None) -> str:
    """The strategy for `resources.sharding` and `resources.engine` on `world` processes.

    Args:
        sharding: auto | none | ddp | fsdp | zero2 | zero3.
        engine: torch | deepspeed.
        adapter: the method trains an adapter on a frozen base (PEFT) rather than every weight.
        planned: the planner's sharding for this job on `world` devices (none | zero2 | zero3), for auto.
    """
    if world == 1:
        return "single"
    if sharding == "auto":
        sharding = planned or "none"
        if sharding == "none" and not adapter:
            # Full fine-tuning: sharding gradients and optimizer states (two thirds of its memory) costs
            # no more traffic than DDP: a reduce-scatter plus an all-gather is what an all-reduce is.
            sharding = "zero2"
    if engine == "deepspeed":
        if sharding not in ("zero2", "zero3"):
            raise SpecError(f"resources.sharding {sharding!r} is not a DeepSpeed stage", hint="use zero2 or zero3")
        return f"deepspeed-{sharding}"
    return {"none": "ddp", "ddp": "ddp", "zero2": "fsdp-zero2", "zero3": "fsdp", "fsdp": "fsdp"}[sharding]


class _LossModule(torch.nn.Module):
    """(summed token loss, labelled tokens, tokens predicted right) of one micro-batch: the unit DDP and FSDP wrap."""

    def __init__(self, model: Any, head_only_on_labels: bool):
        super().__init__()
        self.model = model
        self.head_only_on_labels = head_only_on_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> LabelledLoss:
        return labelled_loss_sum(self.model, batch, head_only_on_labels=self.head_only_on_labels)


@dataclass
class ParallelModel:
    """The model being trained, as the loop sees it.

    `model` is the peft/transformers model (what checkpoints name and artifacts save); `step_module`
    computes the loss through whatever wrapper the strategy needs.
    """

    model: Any
    step_module: torch.nn.Module
    strategy: str
    ranks: Ranks

    @property
    def sharded(self) -> bool:
        """Parameters are DTensors split over the ranks (FSDP)."""
        return self.strategy.startswith("fsdp")

    def loss(self, batch: dict[str, torch.Tensor]) -> LabelledLoss:
        return self.step_module(batch)

    @contextlib.contextmanager
    def accumulating(self, sync: bool) -> Iterator[None]:
        """Around one micro-batch's forward and backward: gradients are reduced over the ranks only
        when `sync` (the step's last micro-batch); the others accumulate locally."""
        if self.strategy == "ddp" and not sync:
            with self.step_module.no_sync():
                yield
            return
        if self.sharded:
            self.step_module.set_requires_gradient_sync(sync)
        yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer_step(self, optimizer: Any, max_grad_norm: float) -> float:
        """Clip the gradients to `max_grad_norm` (their norm over all ranks), step; returns the norm before clipping."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP: the same replicated value on every rank
            norm = norm.full_tensor()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def full_state_dict(self, trainable_only: bool) -> dict[str, torch.Tensor] | None:
        """Whole tensors on rank 0 (gathered from the shards; every rank must call this), {} on the
        others; None when the model is not sharded and can save itself."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=trainable_only)
        return without_tied_copies(self.model, get_model_state_dict(self.model, options=options))


def without_tied_copies(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """`state` without the second name of a tied weight (an output head sharing the embeddings): the
    artifact holds it once, as a model saving itself does."""
    unique = {name for name, _ in model.named_parameters()}
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return {k: v for k, v in state.items() if k in unique or k not in every}


def parallelize(model: Any, strategy: str, ranks: Ranks, *, head_only_on_labels: bool) -> ParallelModel:
    """Wrap `model` for `strategy` (torch strategies; DeepSpeed wraps once its optimizer exists)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    step_module = _LossModule(model, head_only_on_labels)
    if strategy in ("single",) or strategy.startswith("deepspeed"):
        return ParallelModel(model, step_module, strategy, ranks)
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ranks.local_rank] if ranks.device.startswith("cuda") else None
        # Buffers (rotary frequencies) are the same on every rank and never change: no sync per forward.
        wrapped = DistributedDataParallel(step_module, device_ids=device_ids, forward_sync_buffers=False)
        return ParallelModel(model, wrapped, strategy, ranks)
    _fully_shard(model, step_module, ranks, reshard_after_forward=strategy == "fsdp")
    return ParallelModel(model, step_module, strategy, ranks)


def _fully_shard(model: Any, root: torch.nn.Module, ranks: Ranks, *, reshard_after_forward: bool) -> None:
    """FSDP2: one unit per decoder layer (its all-gather overlaps the previous layer's compute), and
    the root holding the rest (embeddings, final norm, output head)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if ranks.device.startswith("cuda") else "cpu", (ranks.world,))
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(lm.get_decoder(), "layers", None)
    if layers is None:
        raise SpecError(f"FSDP needs the model's decoder layers; {type(lm).__name__} has no decoder.layers",
                        hint="use resources.sharding: ddp for this model")
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(root, mesh=mesh, reshard_after_forward=reshard_after_forward)
