"""Deterministic micro-batches per epoch, so a resumed run sees exactly the data it would have seen."""

from __future__ import annotations

import random
from typing import Any

from tunewise.data import collate, length_grouped_batches, pack_examples


class BatchPlan:
    """The order of micro-batches for every epoch, fixed by the seed.

    Packed: examples are bin-packed once into max_length sequences, and the sequence order is
    reshuffled each epoch. Unpacked: examples of similar length are batched together (less padding).
    """

    def __init__(self, examples: list[dict], *, micro_batch_size: int, max_length: int, packed: bool, seed: int,
                 pad_id: int):
        self.micro_batch_size = micro_batch_size
        self.max_length = max_length
        self.packed = packed
        self.fixed_width: int | None = None  # pad every batch to this width (compiled layers: one shape)
        self.seed = seed
        self.pad_id = pad_id
        self.items = pack_examples(examples, max_length, seed) if packed else examples

    def epoch(self, epoch: int) -> list[list[int]]:
        """Index lists into self.items, one per micro-batch."""
        if self.packed:
            order = list(range(len(self.items)))
            random.Random(self.seed * 1000 + epoch).shuffle(order)
            size = self.micro_batch_size
            return [order[i : i + size] for i in range(0, len(order), size)]
        return length_grouped_batches(self.items, self.micro_batch_size, self.seed * 1000 + epoch)

    def pad_to_max_length(self) -> None:
        """From now on every packed micro-batch is max_length wide (packed rows are nearly full: little
        padding). Unpacked batches keep their own widths."""
        if self.packed:
            self.fixed_width = self.max_length

    def micro_batches_per_epoch(self) -> int:
        return len(self.epoch(0))

    def tensors(self, indices: list[int], device: str) -> tuple[dict[str, Any], int]:
        """The collated micro-batch on `device`, and its number of real (non-padding) tokens."""
        items = [self.items[i] for i in indices]
        batch = collate(items, self.pad_id, self.fixed_width)
        real_tokens = sum(len(item["input_ids"]) for item in items)
        return {k: v.to(device) for k, v in batch.items()}, real_tokens
