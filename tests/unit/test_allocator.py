"""CPU training's allocator: when tunewise preloads mimalloc, and what the preloaded process runs under."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tunewise.errors import SpecError
from tunewise.train import allocator
from tunewise.train.allocator import (REEXECUTED_VARIABLE, active_allocator, allocator_choice, mimalloc_library,
                                      preload_environment, reexecute_under_mimalloc,
                                      system_environment)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")


def test_choice_defaults_to_auto_and_names_a_bad_value():
    assert allocator_choice({}) == "auto"
    assert allocator_choice({"TUNEWISE_ALLOCATOR": " System "}) == "system"
    with pytest.raises(SpecError, match="TUNEWISE_ALLOCATOR='jemalloc' is not one of auto, mimalloc, system"):
        allocator_choice({"TUNEWISE_ALLOCATOR": "jemalloc"})


@linux_only
def test_preload_environment_puts_mimalloc_first_and_keeps_freed_pages():
    library = mimalloc_library()
    assert library is not None and library.name.startswith("libmimalloc.so.")
    env = preload_environment({"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == f"{library}:/opt/other.so"
    assert env["MIMALLOC_PURGE_DELAY"] == "-1" and env[REEXECUTED_VARIABLE] == "1" and env["PATH"] == "/bin"
    # A user's own mimalloc setting wins.
    assert preload_environment({"MIMALLOC_PURGE_DELAY": "100"})["MIMALLOC_PURGE_DELAY"] == "100"


def test_no_preload_when_asked_for_the_system_allocator_or_already_preloaded():
    assert preload_environment({"TUNEWISE_ALLOCATOR": "system"}) is None
    assert preload_environment({REEXECUTED_VARIABLE: "1"}) is None


def test_asking_for_mimalloc_without_the_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(allocator, "mimalloc_library", lambda: None)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    assert preload_environment({}) is None  # auto: the system allocator, silently
    with pytest.raises(SpecError, match="cmeel-mimalloc package is not installed"):
        preload_environment({"TUNEWISE_ALLOCATOR": "mimalloc"})


def test_no_reexecution_from_python_or_for_cuda(monkeypatch):
    def refuse(*args):
        raise AssertionError("must not re-execute")

    monkeypatch.setattr(allocator.os, "execve", refuse)
    monkeypatch.delenv(REEXECUTED_VARIABLE, raising=False)
    reexecute_under_mimalloc(None, "cpu")  # called from Python: sys.argv is some other program's
    reexecute_under_mimalloc(["train", "job.yaml"], "cuda")


@pytest.fixture
def execs(monkeypatch) -> list:
    """The re-executions asked for, recorded instead of carried out, from a fresh command's environment."""
    calls = []
    monkeypatch.setattr(allocator.os, "execve", lambda *args: calls.append(args))
    monkeypatch.delenv(REEXECUTED_VARIABLE, raising=False)
    monkeypatch.delenv("TUNEWISE_ALLOCATOR", raising=False)
    return calls


@linux_only
def test_cpu_training_command_reexecutes_with_the_preload(execs):
    calls = execs
    reexecute_under_mimalloc(["train", "job.yaml", "train.max_steps=2"], "cpu")
    (executable, argv, env), = calls
    assert argv == [sys.executable, "-m", "tunewise", "train", "job.yaml", "train.max_steps=2"]
    assert executable == sys.executable and "libmimalloc" in env["LD_PRELOAD"]


@linux_only
def test_a_preloaded_process_runs_torch_under_mimalloc():
    script = ("import torch; from tunewise.train.allocator import active_allocator; "
              "x = torch.randn(512, 512); print(active_allocator(), float((x @ x).sum()) == float((x @ x).sum()))")
    clean = system_environment({**os.environ, "LD_PRELOAD": "/x.so", REEXECUTED_VARIABLE: "1"})
    assert "LD_PRELOAD" not in clean and REEXECUTED_VARIABLE not in clean
    plain = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, check=True)
    preloaded = subprocess.run([sys.executable, "-c", script], env=preload_environment(clean),
                               capture_output=True, text=True, check=True)
    assert plain.stdout.split() == ["system", "True"]
    assert preloaded.stdout.split() == ["mimalloc", "True"], preloaded.stderr
    assert active_allocator() in ("system", "mimalloc")


@linux_only
def test_auto_device_asks_torch_only_where_a_gpu_driver_is(monkeypatch, execs):
    import torch

    calls = execs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(allocator, "_may_have_gpu", lambda: True)
    reexecute_under_mimalloc(["train", "job.yaml"], "auto")
    assert calls == []  # a CUDA run keeps the system allocator
    monkeypatch.setattr(allocator, "_may_have_gpu", lambda: False)
    reexecute_under_mimalloc(["train", "job.yaml"], "auto")
    assert len(calls) == 1
