"""Per-example attention in one-thread kernel workers: same results as PyTorch's SDPA, and the
workers leave torch's thread settings as they found them."""

from __future__ import annotations

import os
import signal

import pytest
import torch
import torch.nn.functional as F

from tunewise.train import kernel_threads
from tunewise.train.kernel_threads import balanced_groups, run_split, worker_count
from tunewise.train.packed_attention import _per_example_sdpa


def _reference(q, k, v, lengths, scale):
    outputs = []
    for qi, ki, vi in zip(q.split(lengths), k.split(lengths), v.split(lengths)):
        qi, ki, vi = (x.transpose(0, 1)[None] for x in (qi, ki, vi))
        out = F.scaled_dot_product_attention(qi, ki, vi, is_causal=True, scale=scale,
                                             enable_gqa=ki.shape[1] != qi.shape[1])
        outputs.append(out[0].transpose(0, 1))
    return torch.cat(outputs)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kv_heads", [3, 1, 6])
def test_attention_in_workers_matches_sdpa(threads, kv_heads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        lengths = [1, 7, 30, 2, 19, 64]
        tokens = sum(lengths)
        q = torch.randn(tokens, 6, 16, requires_grad=True)
        k, v = (torch.randn(tokens, kv_heads, 16, requires_grad=True) for _ in range(2))
        grad = torch.randn(tokens, 6, 16)
        out = _per_example_sdpa(q, k, v, lengths, 0.25, 0.0)
        out.backward(grad)
        got = (out.detach(), q.grad, k.grad, v.grad)
        for x in (q, k, v):
            x.grad = None
        expected_out = _reference(q, k, v, lengths, 0.25)
        expected_out.backward(grad)
        for actual, expected in zip(got, (expected_out.detach(), q.grad, k.grad, v.grad)):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)


def test_a_new_thread_count_gets_new_workers():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert worker_count() == 2
        torch.set_num_threads(3)
        seen: list[int] = []
        run_split(lambda part: seen.append(torch.get_num_threads()), range(6))
        assert worker_count() == 3 and seen == [1] * 6
        torch.set_num_threads(1)
        assert worker_count() == 1  # one thread: the caller runs the work itself
    finally:
        torch.set_num_threads(previous)


def test_workers_keep_the_callers_thread_count():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        run_split(lambda part: seen.append(torch.get_num_threads()), [0, 1, 2, 3])
        assert worker_count() == 2
        assert seen == [1, 1, 1, 1]  # every worker runs its kernels on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_a_workers_error_reaches_the_caller():
    def fail(part):
        raise ValueError(f"part {part} failed")

    with pytest.raises(ValueError, match="failed"):
        run_split(fail, [0, 1])


def test_work_runs_without_autograd_recording():
    x = torch.ones(3, requires_grad=True)
    results = []
    run_split(lambda part: results.append(x * part), [2, 3])
    assert all(not r.requires_grad for r in results)


def test_attention_in_workers_under_inference_mode():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            q, k, v = torch.randn(20, 4, 8), torch.randn(20, 2, 8), torch.randn(20, 2, 8)
            out = _per_example_sdpa(q, k, v, [12, 8], 0.3, 0.0)
        torch.testing.assert_close(out, _reference(q, k, v, [12, 8], 0.3))
    finally:
        torch.set_num_threads(previous)


def test_balanced_groups_share_the_cost():
    groups = balanced_groups([100.0, 1.0, 50.0, 49.0, 2.0], 2)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    assert sorted(sum([100.0, 1.0, 50.0, 49.0, 2.0][i] for i in g) for g in groups) == [101.0, 101.0]
    assert balanced_groups([5.0], 4) == [[0]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_split(lambda part: None, [0, 1])  # the parent's workers exist
        pid = os.fork()
        if pid == 0:  # the child: the parent's threads are gone; new ones must start, not hang
            signal.alarm(60)  # a hang ends the child (and fails the test) instead of the suite
            try:
                done = []
                run_split(lambda part: done.append(part), [0, 1])
                os._exit(0 if sorted(done) == [0, 1] and kernel_threads._pool is not None else 1)
            except BaseException:  # noqa: BLE001 - a forked child must exit, whatever failed
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        torch.set_num_threads(previous)
