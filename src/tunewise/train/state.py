"""What a checkpoint holds: trainable weights, optimizer, scheduler, RNG and the data position."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunewise.errors import CheckpointError


@dataclass
class LoopState:
    step: int = 0  # optimizer steps completed
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    tokens_seen: int = 0
    best_val_loss: float | None = None
    elapsed_s: float = 0.0


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied weight once, so safetensors sees no shared storage.
    return {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}


def write_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, state: LoopState) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(folder / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    torch.save(rng_states(), folder / "rng.pt")
    (folder / "state.json").write_text(json.dumps(asdict(state), indent=2))


def read_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any) -> LoopState:
    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    if set(weights) != expected:
        missing = sorted(expected - set(weights))[:3]
        extra = sorted(set(weights) - expected)[:3]
        raise CheckpointError(
            f"checkpoint {folder} does not match this model (missing {missing}, unexpected {extra})",
            hint="the spec changed since the checkpoint was written; start a new run with --restart",
        )
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    restore_rng_states(torch.load(folder / "rng.pt", weights_only=False))
    return LoopState(**json.loads((folder / "state.json").read_text()))


def rng_states() -> dict[str, Any]:
    """Python, numpy, torch and CUDA RNG states (dropout, sampling), to continue exactly on resume."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_states(rng: dict[str, Any]) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
