"""A stand-in for kubectl and the cluster behind it, for the Kubernetes executor's tests.

Objects live as JSON files under $FAKE_KUBE_DIR/<resource>/<namespace>/<name>.json. `apply`
validates every object as the cluster would (tests/k8s_schemas.py: Kubernetes' schemas for core
kinds, the projects' published APIs for custom resources) and refuses the whole batch otherwise;
`get -o json`, `delete` and `logs -l` behave as kubectl's do, and every call is appended to
$FAKE_KUBE_DIR/calls.jsonl. The test plays the controllers: it writes a workload's status
(`set_status`) to move it from suspended to running to complete or failed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

RESOURCES = {"ConfigMap": "configmaps", "TrainJob": "trainjobs.trainer.kubeflow.org",
             "PyTorchJob": "pytorchjobs.kubeflow.org", "JobSet": "jobsets.jobset.x-k8s.io",
             "PodGroup": "podgroups.scheduling.volcano.sh", "TrainingRuntime": "trainingruntimes.trainer.kubeflow.org",
             "WorkloadPriorityClass": "workloadpriorityclasses.kueue.x-k8s.io"}
CLUSTER_SCOPED = {"WorkloadPriorityClass"}


def root() -> Path:
    return Path(os.environ["FAKE_KUBE_DIR"])


def object_path(resource: str, namespace: str, name: str) -> Path:
    return root() / resource / namespace / f"{name}.json"


def set_status(resource: str, name: str, *, namespace: str = "default", conditions: list[dict] | None = None,
               suspend: bool | None = None) -> None:
    """What the cluster's controllers would write: conditions (type, status, reason, message), and Kueue's
    unsuspending of an admitted workload."""
    path = object_path(resource, namespace, name)
    obj = json.loads(path.read_text())
    if conditions is not None:
        obj.setdefault("status", {})["conditions"] = [{"status": "True", **c} for c in conditions]
    if suspend is not None:
        spec = obj["spec"]["runPolicy"] if obj["kind"] == "PyTorchJob" else obj["spec"]
        spec["suspend"] = suspend
    path.write_text(json.dumps(obj))


def set_phase(resource: str, name: str, phase: str, *, namespace: str = "default") -> None:
    """A Volcano PodGroup's phase (Pending, Inqueue, Running), as its scheduler would set it."""
    path = object_path(resource, namespace, name)
    obj = json.loads(path.read_text())
    obj.setdefault("status", {})["phase"] = phase
    path.write_text(json.dumps(obj))


def calls() -> list[list[str]]:
    path = root() / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _apply(namespace: str | None, text: str) -> int:
    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.k8s_schemas import validate_object

    objects = [o for o in yaml.safe_load_all(text) if o]
    for obj in objects:
        if obj.get("kind") not in RESOURCES:
            return _fail(f'error: resource mapping not found for kind "{obj.get("kind")}": ensure CRDs are installed first')
        try:
            validate_object(obj)
        except Exception as err:  # what the API server's validation would refuse
            return _fail(f'The {obj["kind"]} "{obj["metadata"]["name"]}" is invalid: {str(err).splitlines()[0]}')
    for obj in objects:
        ns = "" if obj["kind"] in CLUSTER_SCOPED else obj["metadata"].get("namespace") or namespace or "default"
        path = object_path(RESOURCES[obj["kind"]], ns, obj["metadata"]["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.is_file()
        obj["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        path.write_text(json.dumps(obj))
        print(f"{RESOURCES[obj['kind']].split('.')[0].rstrip('s')}/{obj['metadata']['name']} "
              f"{'configured' if existed else 'created'}")
    return 0


def main(argv: list[str]) -> int:
    namespace, args = None, []
    rest = iter(argv)
    for arg in rest:
        if arg in ("--namespace", "-n"):
            namespace = next(rest)
        elif arg == "--context":
            next(rest)
        else:
            args.append(arg)
    root().mkdir(parents=True, exist_ok=True)
    with (root() / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps(argv) + "\n")
    ns = namespace or "default"
    verb = args[0] if args else ""
    if verb == "apply" and args[1:3] == ["-f", "-"]:
        return _apply(namespace, sys.stdin.read())
    if verb == "get" and len(args) >= 3:
        path = object_path(args[1], ns, args[2])
        if not path.is_file():
            return _fail(f'Error from server (NotFound): {args[1]} "{args[2]}" not found')
        print(path.read_text())
        return 0
    if verb == "delete" and args[1] == "pods":
        return 0  # no pods run here; the call is recorded
    if verb == "delete" and len(args) >= 3:
        path = object_path(args[1], ns, args[2])
        if path.is_file() and "--cascade=foreground" in args and "--wait=false" in args:  # it stays until its pods are gone
            obj = json.loads(path.read_text())
            obj["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            path.write_text(json.dumps(obj))
        elif path.is_file():
            path.unlink()
        elif "--ignore-not-found" not in args:
            return _fail(f'Error from server (NotFound): {args[1]} "{args[2]}" not found')
        return 0
    if verb == "logs" and "-l" in args:
        selector = args[args.index("-l") + 1]
        log = root() / "logs" / f"{selector.split('=')[-1]}.log"
        print(log.read_text() if log.is_file() else "", end="")
        return 0
    return _fail(f"fake kubectl: unsupported command {argv}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
