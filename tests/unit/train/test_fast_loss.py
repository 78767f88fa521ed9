"""The fast training loss (attention per packed example, chunked output head) computes what the plain
path computes: the same loss and the same gradients, packed or padded, LoRA or full fine-tuning."""

from __future__ import annotations

import copy
import random

import pytest
import torch
import torch.nn.functional as F

from tunewise.data import collate, pack_examples
from tunewise.train.loss import head_cross_entropy_and_hits, head_cross_entropy_sum, labelled_loss_sum
from tunewise.train.packed_attention import PACKED_ATTENTION, packed_example_lengths


def _examples(vocab: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for length in (5, 9, 17, 3, 30, 12, 7, 22, 40, 2, 16):
        ids = [rng.randrange(vocab) for _ in range(length)]
        out.append({"input_ids": ids, "labels": [t if rng.random() < 0.6 else -100 for t in ids]})
    return out


def _reference_loss(model, batch) -> torch.Tensor:
    """The plain path: transformers' own attention (block-diagonal mask from position_ids), full logits."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    return F.cross_entropy(logits[mask].float(), targets[mask], reduction="sum")


@pytest.fixture
def two_models(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    fast = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = copy.deepcopy(fast)
    return fast, reference


@pytest.mark.parametrize("packed", [True, False])
def test_loss_and_gradients_match_the_plain_path(two_models, packed):
    fast, reference = two_models
    examples = _examples(fast.config.vocab_size)
    batch = collate(pack_examples(examples, 48, seed=0) if packed else examples[:4], pad_id=0)
    loss = labelled_loss_sum(fast, batch, head_only_on_labels=True).loss_sum
    loss.backward()
    expected = _reference_loss(reference, batch)
    expected.backward()
    assert (fast.config._attn_implementation == PACKED_ATTENTION) == packed
    assert reference.config._attn_implementation == "sdpa"
    assert torch.allclose(loss, expected, rtol=1e-5)
    for (name, a), b in zip(fast.named_parameters(), reference.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name


def test_generation_after_packed_training_is_unchanged(two_models):
    fast, reference = two_models
    batch = collate(pack_examples(_examples(fast.config.vocab_size), 48, seed=0), pad_id=0)
    labelled_loss_sum(fast, batch, head_only_on_labels=True)  # switches fast to the packed attention
    prompt = torch.tensor([[1, 2, 3, 4]])
    assert fast.generate(prompt, max_new_tokens=6, do_sample=False).tolist() == \
        reference.generate(prompt, max_new_tokens=6, do_sample=False).tolist()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("train_weight", [False, True])
def test_chunked_head_matches_full_logits(bias, train_weight):
    torch.manual_seed(0)
    hidden = torch.randn(70, 16, requires_grad=True)
    weight = (torch.randn(300, 16) * 0.3).requires_grad_(train_weight)
    b = (torch.randn(300) * 0.1).requires_grad_(train_weight) if bias else None
    targets = torch.randint(0, 300, (70,))
    got = head_cross_entropy_sum(hidden, weight, b, targets, chunk_rows=16)
    (0.5 * got).backward()
    grads = [t.grad.clone() for t in (hidden, weight, b) if t is not None and t.requires_grad]
    for t in (hidden, weight, b):
        if t is not None:
            t.grad = None
    want = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="sum")
    (0.5 * want).backward()
    assert torch.allclose(got, want, rtol=1e-5)
    for g, t in zip(grads, [t for t in (hidden, weight, b) if t is not None and t.requires_grad]):
        assert torch.allclose(g, t.grad, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(head_cross_entropy_sum(hidden, weight, b, targets), want, rtol=1e-5)


def test_token_accuracy_on_a_known_batch():
    # One-hot hidden states through an identity head: position i predicts token hidden_i's index.
    weight = torch.eye(6, 4) * 5.0
    hidden = torch.eye(4)[[0, 1, 2, 3, 1, 2, 0]].requires_grad_(True)
    targets = torch.tensor([0, 1, 5, 3, 2, 2, 4])  # right at positions 0, 1, 3, 5
    loss, hits = head_cross_entropy_and_hits(hidden, weight, None, targets, chunk_rows=3)
    assert int(hits) == 4
    loss.backward()  # the hit count rides along without breaking the gradient
    assert torch.allclose(loss, F.cross_entropy(hidden @ weight.t(), targets, reduction="sum"))


@pytest.mark.parametrize("head_only_on_labels", [True, False])
def test_labelled_accuracy_matches_argmax_over_full_logits(two_models, head_only_on_labels):
    fast, reference = two_models
    batch = collate(_examples(fast.config.vocab_size)[:4], pad_id=0)
    got = labelled_loss_sum(fast, batch, head_only_on_labels=head_only_on_labels)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
    logits = reference(**inputs).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    assert got.count == int(mask.sum())
    assert got.correct == int((logits[mask].argmax(-1) == targets[mask]).sum())


def test_example_lengths_from_position_ids():
    assert packed_example_lengths(torch.tensor([[0, 1, 2, 0, 1], [0, 0, 1, 2, 3]])) == [3, 2, 1, 4]
    assert packed_example_lengths(torch.tensor([[0, 1, 2, 3]])) is None  # one example: plain causal
    assert packed_example_lengths(torch.tensor([[5, 6, 0, 1]])) is None  # continues a cache: not packed


def test_chunked_head_in_bf16_matches_fp32_logits():
    # bf16 weights take the path without the fp32 logits buffer; the logits are still summed in fp32.
    torch.manual_seed(0)
    hidden = torch.randn(40, 16).bfloat16().requires_grad_(True)
    weight = (torch.randn(300, 16) * 0.3).bfloat16()
    targets = torch.randint(0, 300, (40,))
    got = head_cross_entropy_sum(hidden, weight, None, targets, chunk_rows=16)
    got.backward()
    reference = hidden.detach().float().requires_grad_(True)
    want = F.cross_entropy(F.linear(reference, weight.float()), targets, reduction="sum")
    want.backward()
    assert got.dtype == torch.float32 and hidden.grad.dtype == torch.bfloat16
    assert torch.allclose(got, want, rtol=1e-2)
    assert torch.allclose(hidden.grad.float(), reference.grad, atol=2e-2)
