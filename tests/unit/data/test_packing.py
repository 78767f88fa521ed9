"""Packing keeps examples whole and apart; batching groups lengths; collate pads correctly."""

from __future__ import annotations

import random

import pytest

from tunewise.data import IGNORE_INDEX, collate, length_grouped_batches, pack_examples, tokenize_record

from ._helpers import chat_row


def _example(length: int, start: int = 1) -> dict:
    ids = list(range(start, start + length))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]}


def _split_packed(sequence: dict) -> list[tuple[list[int], list[int]]]:
    """Cut a packed sequence back into (ids, labels) per example, using position_ids restarts."""
    parts, current = [], None
    for token, label, position in zip(sequence["input_ids"], sequence["labels"], sequence["position_ids"]):
        if position == 0:
            current = ([], [])
            parts.append(current)
        current[0].append(token)
        current[1].append(label)
    return parts


def test_every_example_lands_whole_in_exactly_one_sequence():
    rng = random.Random(0)
    examples = [_example(rng.randint(2, 60), start=1000 * i) for i in range(200)]
    packed = pack_examples(examples, max_length=128, seed=3)
    assert all(len(s["input_ids"]) <= 128 for s in packed)
    found = sorted(tuple(ids) for seq in packed for ids, _ in _split_packed(seq))
    assert found == sorted(tuple(e["input_ids"]) for e in examples)


def test_labels_at_boundaries_and_position_ids():
    examples = [_example(6, 10), _example(4, 50), _example(5, 90)]
    (sequence,) = pack_examples(examples, max_length=32, seed=0)
    by_first = {ids[0]: (ids, labels) for ids, labels in _split_packed(sequence)}
    for example in examples:
        ids, labels = by_first[example["input_ids"][0]]
        assert labels[0] == IGNORE_INDEX  # nothing is trained to predict across a boundary
        assert labels[1:] == example["labels"][1:]
    positions = sequence["position_ids"]
    assert positions.count(0) == 3 and len(positions) == 15


def test_packing_is_dense_and_deterministic():
    rng = random.Random(1)
    examples = [_example(rng.randint(5, 200)) for _ in range(500)]
    first = pack_examples(examples, 256, seed=7)
    assert first == pack_examples(examples, 256, seed=7)
    tokens = sum(len(e["input_ids"]) for e in examples)
    assert tokens / (len(first) * 256) > 0.95  # best-fit decreasing leaves little room unused


def test_packing_rejects_an_overlong_example():
    with pytest.raises(ValueError, match="max_length"):
        pack_examples([_example(10)], max_length=8, seed=0)


def test_length_grouped_batches_cover_all_and_group_lengths():
    rng = random.Random(2)
    examples = [_example(rng.randint(1, 500)) for _ in range(1000)]
    batches = length_grouped_batches(examples, batch_size=8, seed=5)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == length_grouped_batches(examples, batch_size=8, seed=5)
    assert batches != length_grouped_batches(examples, batch_size=8, seed=6)

    def waste(groups):
        return sum(max(len(examples[i]["input_ids"]) for i in g) * len(g) for g in groups)

    random_batches = [list(range(i, i + 8)) for i in range(0, 1000, 8)]
    assert waste(batches) < 0.6 * waste(random_batches)


def test_collate_unpacked_pads_and_masks():
    import torch

    batch = collate([_example(3, 1), _example(5, 1)], pad_id=0)
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].tolist()[0] == [1, 2, 3, 0, 0]
    assert batch["labels"].tolist()[0][-2:] == [IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long


def test_collate_packed_has_no_attention_mask_and_padding_is_its_own_sequence():
    packed = pack_examples([_example(3), _example(2), _example(6)], max_length=6, seed=0)
    batch = collate(packed, pad_id=0)
    assert "attention_mask" not in batch
    for row, sequence in zip(batch["position_ids"].tolist(), packed):
        pad = len(row) - len(sequence["position_ids"])
        assert row[len(sequence["position_ids"]):] == list(range(pad))


def test_packed_forward_equals_separate_forwards(tiny_model_dir, tokenizer):
    """transformers builds a block-diagonal mask from position_ids: packed examples do not see each other."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    examples = [tokenize_record(tokenizer, chat_row(q, a)) for q, a in [("Hi", "Hello there"), ("2+2?", "Four.")]]
    (sequence,) = pack_examples(examples, max_length=512, seed=0)
    batch = collate([sequence], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for part_ids, _ in _split_packed(sequence):
            alone = model(input_ids=torch.tensor([part_ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed_logits[offset : offset + len(part_ids)], alone, atol=1e-4, rtol=1e-4)
            offset += len(part_ids)
