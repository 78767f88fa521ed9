"""The Kubernetes executor: each job attempt is a TrainJob, PyTorchJob or JobSet on a cluster.

    executor:
      kind: kubernetes
      options: {storage: s3://bucket/tunewise, namespace: training, shape: jobset, gang: kueue,
                queue: team-a, image: ghcr.io/tunewise/tunewise:0.1.0, secret: s3-credentials}

`start` renders the job with scale/k8s.py (the same manifests `tunewise k8s render` prints) and
applies them with kubectl. The job's data files are uploaded to `<storage>/<job id>/data/` and its
checkpoints go to `<storage>/<job id>/`, since pods share no disk with the server. The pod holding
rank 0 pushes the run's status.json and metrics.jsonl to `<storage>/<job id>/run/`
(scale/pod.py); `poll` pulls them into the job's run directory on the server, where the control
plane reads them as for a local process, and reads the workload's conditions with `kubectl get`:
suspended (Kueue has not admitted it) or a pending Volcano gang is `waiting` with the reason,
complete is `exited` 0, failed is `failed` with the cluster's message. `stop` deletes the workload
with foreground cascading: its pods get SIGTERM, checkpoint the step under way and push their files
before the object is gone. `cancel` deletes everything the job created at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunewise.errors import SpecError
from tunewise.jobs.executors.base import Handle, Launch, Poll
from tunewise.jobs.executors.k8s_status import workload_poll
from tunewise.jobs.executors.local import read_log
from tunewise.scale.kubectl import Kubectl, KubectlError

log = logging.getLogger("tunewise.jobs")
RESOURCES = {"TrainJob": "trainjobs.trainer.kubeflow.org", "PyTorchJob": "pytorchjobs.kubeflow.org",
             "JobSet": "jobsets.jobset.x-k8s.io", "ConfigMap": "configmaps", "PodGroup": "podgroups.scheduling.volcano.sh",
             "TrainingRuntime": "trainingruntimes.trainer.kubeflow.org"}
LOGS_EVERY_S = 10.0  # how often the pods' logs are copied into the job's log while it runs


class KubernetesOptions(BaseModel):
    """The executor's options (the server config's `executor.options`)."""

    model_config = ConfigDict(extra="forbid")

    storage: str = Field(description="Object-store URL under which each job keeps its data, checkpoints and run "
                         "files (s3://bucket/prefix); the pods and the server both reach it.")
    namespace: str = "default"
    shape: Literal["trainjob", "pytorchjob", "jobset"] = "trainjob"
    gang: Literal["kueue", "volcano", "none"] = "kueue"
    queue: str = Field("default", description="Kueue LocalQueue or Volcano queue.")
    priority_class: str | None = None
    image: str = "ghcr.io/tunewise/tunewise:0.1.0"
    gpu: str = Field("a100-80gb", description="Catalog GPU type of the cluster's nodes (cpu for CPU nodes).")
    secret: str | None = Field(None, description="Secret with the object-store credentials, as pod environment.")
    volumes: list[str] = Field(default_factory=list, description="CLAIM:/path PersistentVolumeClaims every pod mounts.")
    cpu_per_process: int = Field(8, ge=1)
    memory_gib_per_process: int = Field(64, ge=1)
    max_restarts: int = Field(3, ge=0)
    stop_grace_s: int = Field(120, ge=1, description="SIGTERM to SIGKILL for a stopped pod: time to checkpoint.")
    kubectl: str = "kubectl"
    context: str | None = None


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(self, options: KubernetesOptions):
        from tunewise.scale.k8s import K8sTarget

        if "://" not in options.storage or options.storage.startswith("file://"):
            raise SpecError(f"executor.options.storage: {options.storage!r} is not an object-store URL",
                            hint="pods and the server share no disk: e.g. s3://bucket/tunewise")
        self.options = options
        self.storage = options.storage.rstrip("/")
        self.kubectl = Kubectl(options.kubectl, options.context, options.namespace)
        volumes = tuple(tuple(v.split(":", 1)) for v in options.volumes if ":" in v)
        if len(volumes) != len(options.volumes):
            raise SpecError("executor.options.volumes: each is CLAIM:/mount/path")
        self.target = K8sTarget(image=options.image, namespace=options.namespace, kind=options.shape,
                                gang=options.gang, queue=options.queue, priority_class=options.priority_class,
                                gpu=options.gpu, volumes=volumes, secret=options.secret,
                                cpu_per_process=options.cpu_per_process,
                                memory_gib_per_process=options.memory_gib_per_process,
                                max_restarts=options.max_restarts, stop_grace_s=options.stop_grace_s)
        self._logs_copied_at: dict[str, float] = {}
        self._last: dict[str, Poll] = {}  # each workload's last known state, kept while the cluster does not answer

    # -- start ------------------------------------------------------------------------------------

    def start(self, launch: Launch) -> Handle:
        from tunewise.scale.k8s import kubernetes_name, pod_path_warnings, render, to_yaml
        from tunewise.scale.run_mirror import run_url_for
        from tunewise.spec import load_spec

        raw = yaml.safe_load(launch.spec_path.read_text(encoding="utf-8")) or {}
        _refuse_what_pods_cannot_run(raw)
        job_url = f"{self.storage}/{launch.job_id}"
        raw = self._with_storage(raw, job_url)
        spec = load_spec(raw=raw)
        name = kubernetes_name(launch.job_id)
        objects, placement = render(spec, self.target, name=name)
        notes = [f"{self.options.shape} {name} in namespace {self.options.namespace} (gang: {self.options.gang}, "
                 f"queue {self.options.queue}): {placement.nnodes} pod(s) x {placement.nproc_per_node} process(es)",
                 *placement.notes, *pod_path_warnings(spec, self.target)]
        workload = objects[-1]
        resource = RESOURCES[workload["kind"]]
        if self.kubectl.get(resource, name) is not None:  # an earlier attempt's, finished or failed: start afresh
            self.kubectl.delete(resource, name, "--cascade=foreground", wait=True)
        applied = self.kubectl.apply(to_yaml(objects))
        _append(launch.log_path, f"\n--- attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} on Kubernetes ---\n"
                + "".join(f"{note}\n" for note in notes) + applied)
        owned = [(RESOURCES[o["kind"]], o["metadata"]["name"]) for o in objects
                 if o["kind"] in RESOURCES and o["metadata"].get("namespace")]
        return {"executor": self.name, "kind": workload["kind"], "resource": resource,
                "name": name, "namespace": self.options.namespace, "objects": owned,
                "checkpoints": spec.checkpoint.dir, "run_url": run_url_for(spec.checkpoint.dir),
                "run_dir": str(launch.run_dir),
                "log": str(launch.log_path), "started_at": time.time()}

    def _with_storage(self, raw: dict[str, Any], job_url: str) -> dict[str, Any]:
        """The spec with its data files uploaded to `job_url`/data and its checkpoints under `job_url`."""
        import fsspec

        data = dict(raw.get("data") or {})
        for field in ("train", "validation"):
            path = data.get(field)
            if isinstance(path, str) and "://" not in path and Path(path).is_file():
                url = f"{job_url}/data/{field}-{Path(path).name}"
                fs = fsspec.core.url_to_fs(url)[0]
                fs.put_file(path, url)
                data[field] = url
        checkpoint = dict(raw.get("checkpoint") or {})
        folder = str(checkpoint.get("dir") or "")
        if "://" not in folder or folder.startswith("file://"):
            checkpoint["dir"] = job_url
        return {**raw, "data": data, "checkpoint": checkpoint}

    # -- follow ---------------------------------------------------------------------------------------

    def poll(self, handle: Handle) -> Poll:
        self._pull_run_files(handle)
        name = handle["name"]
        try:
            obj = self.kubectl.get(handle["resource"], name)
            group = None
            if obj is not None and self.options.gang == "volcano" and handle["kind"] != "TrainJob":
                group = self.kubectl.get(RESOURCES["PodGroup"], name)
        except KubectlError as err:  # the cluster did not answer: nothing is known to have changed
            log.warning("reading %s's status failed: %s", name, err)
            return self._last.get(name, Poll("running"))
        poll = workload_poll(obj, group, queue=self.options.queue, gang=self.options.gang)
        self._last[name] = poll
        self._copy_pod_logs(handle, final=poll.state not in ("running", "waiting"))
        if poll.state == "exited" and poll.exit_code == 0:
            self._fetch_artifact(handle)
        return poll

    def _fetch_artifact(self, handle: Handle) -> None:
        """The trained adapter or model from object storage into the run directory, where the registry
        and serving find a finished job's artifact."""
        from tunewise.train.checkpoint import CheckpointManager

        run_dir = Path(handle["run_dir"])
        if not (run_dir / "artifact").is_dir():
            CheckpointManager(handle["checkpoints"]).fetch_artifact(run_dir)

    def _pull_run_files(self, handle: Handle) -> None:
        from tunewise.scale.run_mirror import pull_run_files

        try:
            pull_run_files(handle["run_url"], Path(handle["run_dir"]))
        except OSError as err:  # the store is unreachable for now: the next poll tries again
            log.warning("reading %s's run files from %s failed: %s", handle["name"], handle["run_url"], err)

    def _copy_pod_logs(self, handle: Handle, *, final: bool) -> None:
        """The pods' logs into the job's log file, every LOGS_EVERY_S and once when the attempt ends."""
        name = handle["name"]
        if not final and time.monotonic() - self._logs_copied_at.get(name, 0.0) < LOGS_EVERY_S:
            return
        self._logs_copied_at[name] = time.monotonic()
        try:
            text = self.kubectl.logs(f"tunewise.dev/job={name}")
        except KubectlError as err:
            log.warning("reading %s's pod logs failed: %s", name, err)
            return
        path = Path(handle["log"])
        mark = path.with_name(path.name + ".pods")  # how much of the pods' log is in the job's log already
        copied = mark.read_text() if mark.is_file() else ""
        new = text[len(copied):] if text.startswith(copied) else "\n--- pods ---\n" + text
        if new:
            _append(path, new)
            mark.write_text(text)

    # -- stop, cancel, logs ---------------------------------------------------------------------------

    def stop(self, handle: Handle) -> None:
        # Foreground: the object stays (being deleted) until its pods, SIGTERMed, have checkpointed and exited.
        try:
            self.kubectl.delete(handle["resource"], handle["name"], "--cascade=foreground")
        except KubectlError as err:  # the controller cancels the job once its stop grace has passed
            log.warning("asking %s to stop failed: %s", handle["name"], err)

    def cancel(self, handle: Handle) -> None:
        """Delete the job's objects and pods at once. When the cluster does not answer the job is
        cancelled all the same, and the log names what is left to delete by hand."""
        try:
            for resource, name in handle.get("objects") or [(handle["resource"], handle["name"])]:
                self.kubectl.delete(resource, name, "--cascade=background")
            self.kubectl.run("delete", "pods", "-l", f"tunewise.dev/job={handle['name']}", "--ignore-not-found",
                             "--wait=false", "--grace-period=0", "--force", what="kubectl delete pods")
        except KubectlError as err:
            log.error("deleting %s failed (%s): delete it with kubectl delete -n %s -l tunewise.dev/job=%s",
                      handle["name"], err, handle.get("namespace"), handle["name"])

    def logs(self, handle: Handle, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        return read_log(Path(handle["log"]), offset, limit)


def _refuse_what_pods_cannot_run(raw: dict[str, Any]) -> None:
    """Jobs this executor cannot carry to a pod yet, refused with the reason rather than run wrong."""
    if raw.get("stages"):
        raise SpecError("stages: a job of several stages runs with the local executor only (each stage's run "
                        "directory is followed on this machine)")
    method = raw.get("method") if isinstance(raw.get("method"), dict) else {}
    if method.get("reward_functions"):
        raise SpecError("method.reward_functions: reward code written on the server does not reach the pods; "
                        "jobs with graders run with the local executor")


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") or not text else text + "\n")


def make(**options: Any) -> KubernetesExecutor:
    """The executor from the server config's `executor.options`; a bad option is a SpecError naming it."""
    from tunewise.spec import problem_lines

    try:
        return KubernetesExecutor(KubernetesOptions.model_validate(options))
    except ValidationError as err:
        raise SpecError("executor.options: invalid Kubernetes executor options\n"
                        + "\n".join(f"  {line}" for line in problem_lines(err))) from None
