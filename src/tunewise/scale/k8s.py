"""Kubernetes manifests for a training job: `tunewise k8s render`, and the Kubernetes executor's renderer.

One job becomes:
- a ConfigMap holding the job spec, with `resources` set from the plan (scale/placement.py);
- the workload, one of: a Kubeflow Trainer v2 `TrainJob` (runtime `torch-distributed`), a Kubeflow
  Training Operator v1 `PyTorchJob`, or a plain `JobSet` with one indexed Job of `nnodes` pods;
- gang admission: Kueue (`kueue.x-k8s.io/queue-name`, a `WorkloadPriorityClass`, the workload created
  suspended so Kueue admits all its pods or none) or Volcano (a `PodGroup` whose `minMember` is the
  pod count; for a TrainJob, a `TrainingRuntime` whose podGroupPolicy makes the Trainer create it).

Every pod runs the same container (`_container`: the image and the command are written once):
`python -m tunewise.scale.pod /etc/tunewise/job.yaml`, which runs `tunewise train` on the spec
and pushes the run's status and metrics beside the checkpoints (scale/pod.py). Training's launcher
reads the node rank and the rendezvous address each operator sets (PET_NODE_RANK and
PET_MASTER_ADDR, MASTER_ADDR, JOB_COMPLETION_INDEX) and starts `nproc_per_node` training
processes. Checkpoints must be on object storage: pods come and go, and a restarted pod resumes
from the last complete checkpoint there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from tunewise.errors import SpecError
from tunewise.scale.placement import Placement, place, with_placement
from tunewise.scale.run_mirror import RUN_URL_ENV, run_url_for

SPEC_DIR = "/etc/tunewise"
SPEC_FILE = "job.yaml"
WORKSPACE = "/workspace"
KINDS = ("trainjob", "pytorchjob", "jobset")
GANGS = ("kueue", "volcano", "none")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
VOLCANO_GROUP = "scheduling.k8s.io/group-name"
POD_COMMAND = ("python", "-m", "tunewise.scale.pod")  # tunewise train, plus data download and run files (scale/pod.py)
TRAINER_STEP = {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}


@dataclass(frozen=True)
class K8sTarget:
    """How a job runs on a cluster (the options of `tunewise k8s render`)."""

    image: str = "ghcr.io/tunewise/tunewise:0.1.0"
    namespace: str = "default"
    kind: str = "trainjob"  # trainjob | pytorchjob | jobset
    gang: str = "kueue"  # kueue | volcano | none
    queue: str = "default"  # Kueue LocalQueue, or Volcano queue
    priority_class: str | None = None  # Kueue WorkloadPriorityClass (rendered), or Volcano's PriorityClass name
    priority: int = 100  # the WorkloadPriorityClass's value
    gpu: str = "a100-80gb"  # catalog GPU type the plan places the job on
    params: float | None = None  # base model parameters, when the model is not on this machine
    runtime: str = "torch-distributed"  # the TrainJob's ClusterTrainingRuntime
    volumes: tuple[tuple[str, str], ...] = ()  # (PersistentVolumeClaim, mount path), e.g. data
    secret: str | None = None  # a Secret whose keys become environment (object-store credentials)
    cpu_per_process: int = 8
    memory_gib_per_process: int = 64
    max_restarts: int = 3  # whole-job restarts; each resumes from the last complete checkpoint
    master_port: int = 29500
    stop_grace_s: int = 120  # SIGTERM to SIGKILL: time to write a checkpoint (PyTorchJob and JobSet pods)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"--kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.gang not in GANGS:
            raise SpecError(f"--gang {self.gang!r} is not one of {', '.join(GANGS)}")
        for claim, path in self.volumes:
            if not (_DNS_NAME.fullmatch(claim) and path.startswith("/")):
                raise SpecError(f"--volume {claim}:{path}: expected CLAIM:/absolute/path (a PersistentVolumeClaim name)")


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def render(spec: Any, target: K8sTarget, *, name: str) -> tuple[list[dict[str, Any]], Placement]:
    """The manifests of `spec` on `target`, in the order to apply them, and the placement they encode."""
    _require_object_storage(spec)
    placement = place(spec, gpu=target.gpu, params=target.params)
    spec = with_placement(spec, placement)
    job = kubernetes_name(name)
    objects: list[dict[str, Any]] = [_config_map(job, spec, target)]
    if target.gang == "kueue" and target.priority_class:
        objects.append(_workload_priority_class(target))
    if target.gang == "volcano":
        objects.append(_training_runtime(job, target, placement) if target.kind == "trainjob"
                       else _pod_group(job, target, placement))
    build = {"trainjob": _train_job, "pytorchjob": _pytorch_job, "jobset": _job_set}[target.kind]
    run_files = [{"name": RUN_URL_ENV, "value": run_url_for(spec.checkpoint.dir)}]
    objects.append(build(job, target, placement, run_files))
    return objects, placement


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the spec in the ConfigMap) as literal blocks, readable in the output."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False)


def kubernetes_name(name: str) -> str:
    """A run name as a DNS-1123 name, short enough for the pod hostnames a JobSet derives from it."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40].rstrip("-")
    if not cleaned:
        raise SpecError(f"name {name!r} leaves no letters or digits for a Kubernetes name", hint="set the spec's name")
    return cleaned


def _require_object_storage(spec: Any) -> None:
    folder = spec.checkpoint.dir or ""
    if "://" not in folder or folder.startswith("file://"):
        raise SpecError("checkpoint.dir: on Kubernetes checkpoints must be on object storage (pods come and go)",
                        hint="e.g. checkpoint.dir=s3://bucket/runs/my-job (credentials with --secret)")


def _metadata(job: str, target: K8sTarget, **extra: Any) -> dict[str, Any]:
    return {"name": job, "namespace": target.namespace, "labels": {"app.kubernetes.io/name": "tunewise",
                                                                   "tunewise.dev/job": job}, **extra}


def _workload_metadata(job: str, target: K8sTarget) -> dict[str, Any]:
    meta = _metadata(job, target)
    if target.gang == "kueue":
        meta["labels"][QUEUE_LABEL] = target.queue
        if target.priority_class:
            meta["labels"][PRIORITY_LABEL] = target.priority_class
    return meta


def _config_map(job: str, spec: Any, target: K8sTarget) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(f"{job}-spec", target),
            "data": {SPEC_FILE: spec.to_yaml()}}


def _workload_priority_class(target: K8sTarget) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
            "metadata": {"name": target.priority_class}, "value": target.priority,
            "description": "tunewise training jobs (rendered by tunewise k8s render)"}


# --- the pod: written once for every kind --------------------------------------------------------


def _container(name: str, target: K8sTarget, placement: Placement, env: list[dict[str, Any]]) -> dict[str, Any]:
    processes = placement.nproc_per_node
    amounts = {"cpu": str(target.cpu_per_process * processes), "memory": f"{target.memory_gib_per_process * processes}Gi"}
    if placement.accelerator:
        amounts[placement.accelerator] = str(placement.accelerators_per_node)
    container = {
        "name": name, "image": target.image, "command": [*POD_COMMAND, f"{SPEC_DIR}/{SPEC_FILE}"],
        "env": [{"name": "TUNEWISE_HOME", "value": f"{WORKSPACE}/.tunewise"}, {"name": "PYTHONUNBUFFERED", "value": "1"},
                *env],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "volumeMounts": _mounts(target),
    }
    if target.secret:
        container["envFrom"] = [{"secretRef": {"name": target.secret}}]
    return container


def _mounts(target: K8sTarget) -> list[dict[str, Any]]:
    return [{"name": "job-spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "shm", "mountPath": "/dev/shm"},  # collectives and data loaders share memory; the default is 64 MiB
            *({"name": f"volume-{i}", "mountPath": path} for i, (_, path) in enumerate(target.volumes))]


def _volumes(job: str, target: K8sTarget) -> list[dict[str, Any]]:
    return [{"name": "job-spec", "configMap": {"name": f"{job}-spec"}},
            {"name": "workspace", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
            *({"name": f"volume-{i}", "persistentVolumeClaim": {"claimName": claim}}
              for i, (claim, _) in enumerate(target.volumes))]


def _pod_template(job: str, target: K8sTarget, container: dict[str, Any]) -> dict[str, Any]:
    # A deleted or preempted pod gets SIGTERM, then this long to checkpoint the step under way and push it.
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": _volumes(job, target),
                            "terminationGracePeriodSeconds": target.stop_grace_s}
    metadata: dict[str, Any] = {"labels": {"tunewise.dev/job": job}}
    if target.gang == "volcano":
        spec["schedulerName"] = "volcano"
        metadata["annotations"] = {VOLCANO_GROUP: job}
        if target.priority_class:
            spec["priorityClassName"] = target.priority_class
    return {"metadata": metadata, "spec": spec}


# --- the workloads -------------------------------------------------------------------------------


def _train_job(job: str, target: K8sTarget, placement: Placement, env: list[dict[str, Any]]) -> dict[str, Any]:
    """Kubeflow Trainer v2. The torch runtime sets PET_NODE_RANK and PET_MASTER_ADDR/PORT for the `node` container."""
    container = _container("node", target, placement, env)
    trainer = {key: container[key] for key in ("image", "command", "env")}
    trainer.update(numNodes=placement.nnodes, numProcPerNode=placement.nproc_per_node,
                   resourcesPerNode=container["resources"])
    if target.secret:  # envFrom is not a TrainJob field: each key becomes an env entry from the Secret
        trainer["env"] = [*trainer["env"], *_secret_env(target.secret)]
    runtime = ({"name": f"{job}-runtime", "kind": "TrainingRuntime"} if target.gang == "volcano"
               else {"name": target.runtime, "kind": "ClusterTrainingRuntime"})
    pod_patch = {"volumes": _volumes(job, target), "containers": [{"name": "node", "volumeMounts": _mounts(target)}]}
    patch = {"manager": "tunewise.dev/k8s-render", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": pod_patch}}}}]}}}}
    spec: dict[str, Any] = {"runtimeRef": {"apiGroup": "trainer.kubeflow.org", **runtime}, "trainer": trainer,
                            "runtimePatches": [patch]}
    if target.gang == "kueue":
        spec["suspend"] = True
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": _workload_metadata(job, target), "spec": spec}


def _secret_env(secret: str) -> list[dict[str, Any]]:
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "GOOGLE_APPLICATION_CREDENTIALS")
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}} for key in keys]


def _pytorch_job(job: str, target: K8sTarget, placement: Placement, env: list[dict[str, Any]]) -> dict[str, Any]:
    """Kubeflow Training Operator v1: pod 0 is the Master; the operator sets MASTER_ADDR/PORT and PET_NODE_RANK."""
    template = _pod_template(job, target, _container("pytorch", target, placement, env))
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if placement.nnodes > 1:
        replicas["Worker"] = {"replicas": placement.nnodes - 1, "restartPolicy": "Never", "template": template}
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": target.max_restarts}
    if target.gang == "kueue":
        run_policy["suspend"] = True
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": _workload_metadata(job, target),
            "spec": {"nprocPerNode": str(placement.nproc_per_node), "runPolicy": run_policy,
                     "pytorchReplicaSpecs": replicas}}


def _job_set(job: str, target: K8sTarget, placement: Placement, env: list[dict[str, Any]]) -> dict[str, Any]:
    """A JobSet of one indexed Job: pod i is node i (JOB_COMPLETION_INDEX); node 0 is reached by its hostname."""
    env = [{"name": "MASTER_ADDR", "value": f"{job}-node-0-0.{job}"},
           {"name": "MASTER_PORT", "value": str(target.master_port)}, *env]
    template = _pod_template(job, target, _container("trainer", target, placement, env))
    pods = placement.nnodes
    job_spec = {"parallelism": pods, "completions": pods, "completionMode": "Indexed", "backoffLimit": 0,
                "template": template}
    spec: dict[str, Any] = {
        "network": {"enableDNSHostnames": True, "subdomain": job},
        "failurePolicy": {"maxRestarts": target.max_restarts},
        "successPolicy": {"operator": "All"},
        "replicatedJobs": [{"name": "node", "replicas": 1, "template": {"spec": job_spec}}],
    }
    if target.gang == "kueue":
        spec["suspend"] = True
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": _workload_metadata(job, target),
            "spec": spec}


def _pod_group(job: str, target: K8sTarget, placement: Placement) -> dict[str, Any]:
    """Volcano gang: none of the pods is bound until all `minMember` of them (and their resources) fit."""
    container = _container("x", target, placement, [])
    totals = {k: _times(v, placement.nnodes) for k, v in container["resources"]["requests"].items()}
    spec: dict[str, Any] = {"minMember": placement.nnodes, "queue": target.queue, "minResources": totals}
    if target.priority_class:
        spec["priorityClassName"] = target.priority_class
    return {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup", "metadata": _metadata(job, target),
            "spec": spec}


def _training_runtime(job: str, target: K8sTarget, placement: Placement) -> dict[str, Any]:
    """A TrainJob's gang under Volcano comes from its runtime: the Trainer creates the PodGroup."""
    node = {"name": "node", "template": {"metadata": {"labels": dict(TRAINER_STEP)}, "spec": {"template": {"spec": {
        "containers": [{"name": "node", "image": target.image}]}}}}}
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainingRuntime",
            "metadata": _metadata(f"{job}-runtime", target),
            "spec": {"mlPolicy": {"numNodes": placement.nnodes, "torch": {}}, "podGroupPolicy": {"volcano": {}},
                     "template": {"spec": {"replicatedJobs": [node]}}}}


def _times(quantity: str, count: int) -> str:
    number = re.match(r"^\d+", quantity)
    return f"{int(number.group()) * count}{quantity[number.end():]}" if number else quantity


# --- applying ------------------------------------------------------------------------------------


def pod_path_warnings(spec: Any, target: K8sTarget) -> list[str]:
    """Local files the spec names that pods can only read from the image or a mounted volume."""
    mounts = [path.rstrip("/") + "/" for _, path in target.volumes]
    named = [("data.train", spec.data.train), ("data.validation", spec.data.validation),
             ("data.mix.path", spec.data.mix.path if spec.data.mix else None), ("base_model", spec.base_model)]
    out = []
    for field, value in named:
        if not value or "://" in value or not value.startswith("/"):
            continue  # a URL, a bundled model name or a hub id
        if not any(value.startswith(m) for m in mounts):
            out.append(f"{field} is {value}: the pods read it from the image or a volume mounted there (--volume CLAIM:DIR)")
    return out
