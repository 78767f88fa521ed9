"""Checkpoints of several processes (torch.distributed.checkpoint), and loading any checkpoint into
any number of processes.

A job of several processes saves, next to the same `scheduler.pt` and `state.json` as one process:

    dcp/.metadata, dcp/__<rank>_<n>.distcp   trainable weights and optimizer states, keyed by
                                             parameter name, each rank writing its own shards
    rng/rank-<rank>.pt                       each process's RNG states

(With DeepSpeed, `deepspeed/state/` holds its own partitioned files instead of `dcp/`: see scale/deepspeed.py.)

Keys are parameter names, not positions, and DCP records how each tensor was split, so the same
checkpoint loads into 1, 2 or N processes, replicated (DDP) or sharded (FSDP) alike. A one-process
checkpoint (`trainable.safetensors` + `optimizer.pt`, tunewise.train.state) loads into several
processes through the same name-keyed path; one process loading its own format uses state.py as
it always did.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewise.errors import CheckpointError
from tunewise.train.state import (
    LoopState,
    read_checkpoint,
    restore_rng_states,
    rng_states,
)

DCP_DIR = "dcp"
RNG_DIR = "rng"
DEEPSPEED_DIR = "deepspeed/state"
# DCP's file system writer names the files of rank r `__<r>_<n>.distcp`, DeepSpeed its ZeRO partitions
# `zero_pp_rank_<r>_mp_rank_00_*.pt`; anything else (.metadata, DeepSpeed's model states) is rank 0's.
_SHARD_FILE = re.compile(rf"^{DCP_DIR}/__(\d+)_\d+\.distcp$")
_PARTITION_FILE = re.compile(rf"^{DEEPSPEED_DIR}/zero_pp_rank_(\d+)_")
_RNG_FILE = re.compile(rf"^{RNG_DIR}/rank-(\d+)\.pt$")


def is_sharded_checkpoint(folder: Path) -> bool:
    return (folder / DCP_DIR / ".metadata").is_file()


def owner_rank(relative_path: str) -> int:
    """The rank that stores file `relative_path` of a sharded checkpoint (the one that wrote it)."""
    for pattern in (_SHARD_FILE, _PARTITION_FILE, _RNG_FILE):
        match = pattern.match(relative_path)
        if match:
            return int(match.group(1))
    return 0


def _options(**extra: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Only trainable tensors: an adapter checkpoint must not hold the frozen base.
    return StateDictOptions(ignore_frozen_params=True, strict=False, **extra)


def _trainable_state_dicts(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, optimizer) state dicts keyed by parameter name, trainable tensors only. A frozen output
    head tied to the frozen embeddings slips through DCP's own filter (it is not a parameter of its
    own name), so the model's dict is filtered here too."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=_options())
    trainable = {name for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    return {k: v for k, v in model_state.items() if k in trainable}, optim_state


def write_sharded_checkpoint(folder: Path, parallel: Any, optimizer: Any, scheduler: Any, state: LoopState) -> None:
    """Every rank writes its part of the checkpoint into `folder` (the same path on every rank)."""
    import torch.distributed.checkpoint as dcp

    ranks = parallel.ranks
    if hasattr(parallel, "write_state"):  # DeepSpeed: its own partitioned format
        parallel.write_state(folder)
    else:
        model_state, optim_state = _trainable_state_dicts(parallel.model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder / DCP_DIR))
    (folder / RNG_DIR).mkdir(parents=True, exist_ok=True)
    torch.save(rng_states(), folder / RNG_DIR / f"rank-{ranks.rank}.pt")
    if ranks.is_main:
        torch.save(scheduler.state_dict(), folder / "scheduler.pt")
        (folder / "state.json").write_text(json.dumps(asdict(state), indent=2))


def read_any_checkpoint(folder: Path, parallel: Any, optimizer: Any, scheduler: Any, *, seed: int) -> LoopState:
    """Load a checkpoint of any number of processes into this job's model (wrapped or not) and optimizer.

    A one-process job with the model unwrapped loads a one-process checkpoint exactly as it always has.
    `seed` (the run's) seeds the RNG of a rank the checkpoint has no RNG state for (the job grew),
    from the seed, the step and the rank.
    """
    model, ranks = parallel.model, parallel.ranks
    by_deepspeed = (folder / DEEPSPEED_DIR).is_dir()
    if by_deepspeed != hasattr(parallel, "read_state"):
        written = "DeepSpeed" if by_deepspeed else "torch"
        raise CheckpointError(f"checkpoint {folder} was written with resources.engine: {written.lower()}",
                              hint=f"resume it with engine: {written.lower()} (DeepSpeed: on as many processes as wrote it), or start over with --restart")
    sharded = by_deepspeed or is_sharded_checkpoint(folder)
    if not sharded and parallel.strategy == "single":
        return read_checkpoint(folder, model, optimizer, scheduler)
    if by_deepspeed:
        parallel.read_state(folder)
    elif sharded:
        _load_dcp(folder, model, optimizer)
    else:
        _load_one_process_format(folder, model, optimizer)
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    state = LoopState(**json.loads((folder / "state.json").read_text()))
    rng_file = folder / RNG_DIR / f"rank-{ranks.rank}.pt"
    if not rng_file.is_file() and not sharded and ranks.rank == 0:
        rng_file = folder / "rng.pt"
    if rng_file.is_file():
        restore_rng_states(torch.load(rng_file, weights_only=False))
    else:
        _seed_rank(seed, state.step, ranks.rank)
    return state


def _load_dcp(folder: Path, model: Any, optimizer: Any) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    model_state, optim_state = _trainable_state_dicts(model, optimizer)
    wanted = {"model": model_state, "optim": optim_state}
    try:
        dcp.load(wanted, checkpoint_id=str(folder / DCP_DIR))
    except Exception as err:  # DCP raises CheckpointException (or RuntimeError) naming the missing keys
        raise CheckpointError(f"checkpoint {folder} does not match this model: {str(err).splitlines()[0][:300]}",
                              hint="the spec changed since the checkpoint was written; start a new run with --restart") from None
    set_state_dict(model, optimizer, model_state_dict=wanted["model"], optim_state_dict=wanted["optim"],
                   options=_options())


def _load_one_process_format(folder: Path, model: Any, optimizer: Any) -> None:
    """trainable.safetensors + optimizer.pt (whose states are keyed by position) into a wrapped model:
    positions become parameter names, then DCP's helpers split whole tensors as the wrapper needs."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_state_dict

    weights = load_file(str(folder / "trainable.safetensors"))
    names = [n for n, p in model.named_parameters() if p.requires_grad]  # the optimizer's parameter order
    if set(weights) != set(names):
        missing, extra = sorted(set(names) - set(weights))[:3], sorted(set(weights) - set(names))[:3]
        raise CheckpointError(f"checkpoint {folder} does not match this model (missing {missing}, unexpected {extra})",
                              hint="the spec changed since the checkpoint was written; start a new run with --restart")
    saved = torch.load(folder / "optimizer.pt", weights_only=False)
    by_name = {"state": {names[i]: value for i, value in saved["state"].items()},
               "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                                for group in saved["param_groups"]]}
    set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=by_name,
                   options=_options(full_state_dict=True))


def _seed_rank(seed: int, step: int, rank: int) -> None:
    mixed = (seed * 1_000_003 + step * 1_009 + rank) % 2**32
    random.seed(mixed)
    np.random.seed(mixed)
    torch.manual_seed(mixed)
