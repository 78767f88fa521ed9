"""A Kubernetes workload's status (from `kubectl get -o json`) as the executor's Poll.

The three kinds name their conditions differently:
- TrainJob (Kubeflow Trainer v2): Created, Suspended, Complete, Failed;
- PyTorchJob (Training Operator v1): Created, Running, Restarting, Succeeded, Failed, Suspended;
- JobSet: Suspended, Completed, Failed (and StartupPolicy... while its jobs start).
Kueue keeps a workload it has not admitted suspended (`spec.suspend`, or `spec.runPolicy.suspend`
for a PyTorchJob), and suspends it again when it preempts it. Volcano's gang shows in its PodGroup:
Pending or Inqueue until every member can be bound.
"""

from __future__ import annotations

from typing import Any

from tunewise.jobs.executors.base import Poll

SUCCEEDED = ("Complete", "Completed", "Succeeded")
FAILED = ("Failed",)
WAITING_GROUP_PHASES = ("Pending", "Inqueue")


def workload_poll(obj: dict[str, Any] | None, group: dict[str, Any] | None = None, *, queue: str = "default",
                  gang: str = "kueue") -> Poll:
    """The Poll for a workload object (None: it no longer exists) and, under Volcano, its PodGroup."""
    if obj is None:
        return Poll("gone")
    true = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []
            if str(c.get("status")) == "True"}
    for kind in FAILED:
        if kind in true:
            return Poll("failed", reason=_said(true[kind]) or "the workload failed")
    for kind in SUCCEEDED:
        if kind in true:
            return Poll("exited", 0)
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return Poll("running")  # being stopped: its pods are checkpointing
    if _suspended(obj) or "Suspended" in true:
        said = _said(true["Suspended"]) if "Suspended" in true else ""
        who = f"Kueue has not admitted it to queue {queue!r}" if gang == "kueue" else "the workload is suspended"
        return Poll("waiting", reason=f"{who}" + (f" ({said})" if said else ""))
    if group is not None:
        phase = (group.get("status") or {}).get("phase") or "Pending"
        if phase in WAITING_GROUP_PHASES:
            said = "; ".join(_said(c) for c in (group.get("status") or {}).get("conditions") or [] if _said(c))
            return Poll("waiting", reason=f"Volcano has not scheduled the gang in queue {queue!r} ({phase}"
                                           + (f": {said})" if said else ")"))
    return Poll("running")


def _suspended(obj: dict[str, Any]) -> bool:
    spec = obj.get("spec") or {}
    return bool(spec.get("suspend") or (spec.get("runPolicy") or {}).get("suspend"))


def _said(condition: dict[str, Any]) -> str:
    """A condition's reason and message, as one phrase."""
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    return f"{reason}: {message}" if reason and message else reason or message
