"""Reading what an offline W&B run recorded: its `.wandb` files (a leveldb-style log of protobuf
records: 32 KiB blocks of records with a 7-byte header, after a 7-byte file header)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 32768
_FULL, _LAST = 1, 4


def wandb_installed() -> bool:
    from tunewise.tracking import target_installed

    return target_installed("wandb")


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(raw):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def offline_runs(run_dir: Path) -> tuple[list[Any], dict[int, dict[str, Any]]]:
    """(run records, {step: logged values}) over every offline W&B run file under run_dir/wandb."""
    runs, history = [], {}
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
            elif kind == "history":
                values = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                history.setdefault(int(values["_step"]), {}).update(values)
    return runs, history


def check_wandb_offline_run(run_dir: Path, steps: int) -> None:
    """The job's W&B run has the integration's project, name, entity and tags and our metrics for
    every step, across the processes of a paused and resumed job (one W&B run id)."""
    runs, history = offline_runs(run_dir)
    assert runs and len({r.run_id for r in runs}) == 1, [r.run_id for r in runs]
    assert (runs[0].project, runs[0].display_name, runs[0].entity, list(runs[0].tags)) == \
        ("support", "nightly", "acme", ["t1", "t2"])
    assert sorted(history) == list(range(1, steps + 1))
    assert all(0 <= history[s]["train_accuracy"] <= 1 and history[s]["train_loss"] > 0 for s in history)
    assert "val_accuracy" in history[steps]
