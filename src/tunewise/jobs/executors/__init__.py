"""Executors carry out the queue's decisions: each one module behind `executors.base.Executor`.

`local` runs each job as its own `tunewise train` process on this machine; `ray` as Ray Train
workers on a Ray cluster; `kubernetes` as a workload on a Kubernetes cluster. `make_executor(kind,
...)` picks one by the server config's name.
"""

from __future__ import annotations

from typing import Any

from tunewise.jobs.executors.base import Executor, Launch, Poll, WaitForCapacity


def make_executor(kind: str, **options: Any) -> Executor:
    """The executor named `kind` ("local", or another module in this package with `make(**options)`)."""
    import importlib

    from tunewise.errors import TunewiseError

    try:
        module = importlib.import_module(f"tunewise.jobs.executors.{kind}")
    except ModuleNotFoundError:
        raise TunewiseError(f"executor: {kind!r} is not an executor of this installation",
                            hint="executor: local runs jobs as processes on this machine") from None
    return module.make(**options)


__all__ = ["Executor", "Launch", "Poll", "WaitForCapacity", "make_executor"]
