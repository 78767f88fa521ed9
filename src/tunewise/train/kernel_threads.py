"""Worker threads that each run torch kernels on one CPU thread, for many small independent kernels.

A small kernel (attention over one 150-token example) does not keep torch's intra-op threads busy:
they wait at barriers, the work is split unevenly, and on this project's 2-core machines one thread
ran the per-example attention kernels about as fast as two. Giving each worker thread whole
kernels instead, one thread each, runs them side by side with no barrier inside a kernel.

The workers are started once per process (and again after a fork: threads do not survive one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _forget_pool() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)


def kernel_workers() -> ThreadPoolExecutor | None:
    """The process's pool of one-thread workers, as many as torch's intra-op threads; None when that is 1."""
    global _pool, _pool_size
    threads = torch.get_num_threads()
    if threads < 2:
        return None
    with _lock:
        if _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)  # torch's thread count changed: its workers end when idle
            _pool, _pool_size = _start_workers(threads), threads
        return _pool


def _start_workers(threads: int) -> ThreadPoolExecutor:
    ready = threading.Barrier(threads)

    def one_thread() -> None:
        # torch sets a thread up lazily, at its first parallel call, from the process-wide default; set
        # it up now, so the thread's own count of 1 below is not overwritten when that default returns.
        torch.get_num_threads()
        torch.set_num_threads(1)  # this thread's OpenMP and MKL settings
        ready.wait()  # every worker exists before the process-wide default is put back below

    pool = ThreadPoolExecutor(threads, thread_name_prefix="tunewise-kernels", initializer=one_thread)
    list(pool.map(lambda _: None, range(threads)))
    # torch.set_num_threads also records a default for threads that start later; restore it.
    torch.set_num_threads(threads)
    return pool


def worker_count() -> int:
    """How many kernel workers `run_split` spreads work over (1: the calling thread alone)."""
    return _pool_size if kernel_workers() is not None else 1


def run_split(work: Callable[[T], None], parts: Iterable[T]) -> None:
    """Run `work` on every part, in the kernel workers when there are any; returns when all are done.

    `work` runs without autograd recording, and in inference mode when the caller is (both are per
    thread: the caller's do not carry over by themselves; writing into an inference tensor outside
    inference mode is an error).
    """
    pool = kernel_workers()
    inference = torch.is_inference_mode_enabled()

    def quiet(part: T) -> None:
        with torch.inference_mode(inference), torch.no_grad():
            work(part)

    if pool is None:
        for part in parts:
            quiet(part)
        return
    for _ in pool.map(quiet, parts):  # re-raises a worker's exception here
        pass


def balanced_groups(costs: list[float], groups: int) -> list[list[int]]:
    """Indices of `costs` split into `groups` lists of near-equal total cost (largest first, greedy)."""
    loads = [0.0] * groups
    members: list[list[int]] = [[] for _ in range(groups)]
    for index in sorted(range(len(costs)), key=lambda i: -costs[i]):
        lightest = loads.index(min(loads))
        loads[lightest] += costs[index]
        members[lightest].append(index)
    return [sorted(group) for group in members if group]
