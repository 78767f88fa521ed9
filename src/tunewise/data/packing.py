"""Packing, length-grouped batching and collation of tokenized examples.

Packed sequences carry position_ids that restart at 0 for every example. With no attention_mask,
transformers (>= 5) reads those restarts as sequence boundaries and builds a block-diagonal causal
mask, so packed examples never attend to each other; the model must be called with
use_cache=False (a cache object disables that detection). The first label of every packed example
is -100, so no token is trained to predict across a boundary.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from tunewise.data.templating import IGNORE_INDEX

Example = dict[str, list[int]]


def pack_examples(examples: list[Example], max_length: int, seed: int) -> list[Example]:
    """Pack examples into sequences of at most `max_length` tokens, best-fit decreasing.

    Args:
        examples: {"input_ids", "labels"} dicts, each at most max_length tokens long.
        max_length: sequence capacity in tokens.
        seed: orders equal-length examples and the final sequence order.

    Returns {"input_ids", "labels", "position_ids"} sequences; no example is split. Raises
    ValueError for an example longer than max_length (truncate or drop those first).
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)  # ties in length land in a seeded order
    order.sort(key=lambda i: len(examples[i]["input_ids"]), reverse=True)
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (tokens left, bin index), sorted: best fit = first with room
    for index in order:
        length = len(examples[index]["input_ids"])
        if length > max_length:
            raise ValueError(f"example {index} has {length} tokens, more than max_length={max_length}")
        if length == 0:
            continue
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            bins.append([index])
            room, target = max_length - length, len(bins) - 1
        else:
            room, target = free.pop(slot)
            bins[target].append(index)
            room -= length
        if room > 0:
            bisect.insort(free, (room, target))
    rng.shuffle(bins)
    return [_concatenate([examples[i] for i in members]) for members in bins]


def _concatenate(members: list[Example]) -> Example:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in members:
        ids.extend(example["input_ids"])
        labels.append(IGNORE_INDEX)  # the first token of an example has no in-example predecessor
        labels.extend(example["labels"][1:])
        positions.extend(range(len(example["input_ids"])))
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def length_grouped_batches(examples: list[Example], batch_size: int, seed: int, *, mega_batch: int = 50) -> list[list[int]]:
    """Index batches of similar length (less padding), in a seeded random order.

    Indices are shuffled, cut into groups of `mega_batch` batches, each group sorted by length and
    cut into batches; then the batch order is shuffled, so batches vary in length over an epoch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    group = batch_size * mega_batch
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: len(examples[i]["input_ids"]), reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(batch: list[Example], pad_id: int, width: int | None = None) -> dict[str, Any]:
    """Right-pad a batch into torch tensors, to its longest row or to `width` if given.

    input_ids are padded with pad_id and labels with -100. Unpacked examples (no position_ids) also
    get an attention_mask (1 = token, 0 = padding). Packed sequences get no attention_mask (it would
    stop transformers from using the block-diagonal mask); their padding gets position_ids 0, 1, 2...
    so it forms a sequence of its own that no real token attends to.
    """
    import torch

    if not batch:
        raise ValueError("cannot collate an empty batch")
    packed = "position_ids" in batch[0]
    width = max([len(item["input_ids"]) for item in batch] + [width or 0])
    ids, labels, positions, mask = [], [], [], []
    for item in batch:
        pad = width - len(item["input_ids"])
        ids.append(list(item["input_ids"]) + [pad_id] * pad)
        labels.append(list(item["labels"]) + [IGNORE_INDEX] * pad)
        if packed:
            positions.append(list(item["position_ids"]) + list(range(pad)))
        else:
            mask.append([1] * len(item["input_ids"]) + [0] * pad)
    out = {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}
    if packed:
        out["position_ids"] = torch.tensor(positions, dtype=torch.long)
    else:
        out["attention_mask"] = torch.tensor(mask, dtype=torch.long)
    return out
