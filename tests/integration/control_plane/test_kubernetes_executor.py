"""The Kubernetes executor on a real server, a real S3 server (moto) and a fake kubectl.

No cluster runs here: tests/fake_kubectl.py stands in for kubectl and the API server (it keeps
objects as JSON files and refuses any object Kubernetes' schemas or the custom resources' published
APIs would), and the test plays Kueue and the pods. The pod is real: the test runs the command
the rendered JobSet's container runs (`python -m tunewise.scale.pod`) on the ConfigMap's spec, so
the job trains, checkpoints to S3 and pushes its run files there, and the server follows it from S3.

- a job waits in the queue for Kueue's admission (with the reason), runs, and succeeds with its
  steps, checkpoints, tokens, artifact and pod logs;
- a workload the cluster failed fails the job with the cluster's reason;
- pause deletes the workload in the foreground (its pods checkpoint), and the job is paused;
- cancel deletes every object the job created;
- under Volcano (a PyTorchJob), the job waits while its PodGroup is not scheduled, with Volcano's
  reason, then runs, and fails with the operator's reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests import fake_kubectl
from tests.control_plane_support import LiveServer, cpu_pool, make_key, wait_for
from tests.helpers import write_chat_dataset
from tests.integration.control_plane.conftest import start_server
from tests.integration.control_plane.test_preemption_and_faults import api, messages
from tests.s3_server import s3_endpoint, s3_environment  # noqa: F401  (a fixture)
from tunewise.scale.k8s import kubernetes_name

NAMESPACE = "training"
JOBSETS = "jobsets.jobset.x-k8s.io"


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory, s3_endpoint):
    """kubectl (the fake) first on PATH, its objects in a folder, and a bucket on the local S3 server."""
    import boto3
    import s3fs

    folder = tmp_path_factory.mktemp("cluster")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(fake_kubectl.__file__)}" "$@"\n')
    kubectl.chmod(0o755)
    bucket = f"tunewise-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**s3_environment(s3_endpoint), "FAKE_KUBE_DIR": str(folder / "api")}.items():
            patch.setenv(key, value)
        patch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        s3fs.S3FileSystem.clear_instance_cache()
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield folder, f"s3://{bucket}/jobs"


@contextlib.contextmanager
def _server(tmp_path_factory, tiny_model_dir, fake_cluster, name: str, **options):
    """A server whose executor is `kubernetes` with `options`, and a training file uploaded to it."""
    folder, storage = fake_cluster
    executor = {"kind": "kubernetes", "options": {"storage": storage, "namespace": NAMESPACE, "gpu": "cpu",
                                                  "cpu_per_process": 1, "memory_gib_per_process": 2, **options}}
    app, home = start_server(tmp_path_factory, tiny_model_dir, name=name, executor=executor, scheduling=cpu_pool(4))
    with LiveServer(app) as live:
        live.home, live.key, live.folder = home, make_key(app, "team-a"), folder
        data = write_chat_dataset(home / "train.jsonl", rows=24)
        with data.open("rb") as fh:
            live.file_id = api(live, "POST", "/v1/files", files={"file": ("train.jsonl", fh)},
                               data={"purpose": "fine-tune"})["id"]
        yield live


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_model_dir, fake_cluster):
    """JobSets admitted by Kueue from the LocalQueue team-a."""
    with _server(tmp_path_factory, tiny_model_dir, fake_cluster, "k8s-kueue", shape="jobset", gang="kueue",
                 queue="team-a") as live:
        yield live


@pytest.fixture(scope="module")
def volcano_cluster(tmp_path_factory, tiny_model_dir, fake_cluster):
    """PyTorchJobs gang-scheduled by Volcano in the queue research."""
    with _server(tmp_path_factory, tiny_model_dir, fake_cluster, "k8s-volcano", shape="pytorchjob", gang="volcano",
                 queue="research") as live:
        yield live


def submit(server, steps: int = 4) -> str:
    spec = {"method": "lora", "data": {"train": server.file_id}, "train": {"max_steps": steps, "device": "cpu"},
            "checkpoint": {"every_steps": 2, "keep_last": 2, "keep_best": 0}, "eval": {"enabled": False},
            "tracking": {"enabled": False}}
    return api(server, "POST", "/api/jobs", json={"model": "tiny", "spec": spec})["id"]


def job(server, job_id: str) -> dict:
    return api(server, "GET", f"/api/jobs/{job_id}")


def waiting_for_admission(server, job_id: str) -> dict:
    return wait_for(lambda: (j := job(server, job_id))["queue"]["reason"] == "admission" and j, 120, 0.1,
                    "the job to wait for Kueue")


def stored(resource: str, name: str) -> dict | None:
    path = fake_kubectl.object_path(resource, NAMESPACE, name)
    return json.loads(path.read_text()) if path.is_file() else None


def run_pod(server, name: str) -> subprocess.CompletedProcess:
    """What the JobSet's pod does once Kueue admits it: its container's command on the ConfigMap's spec."""
    pod = server.folder / "pods" / name
    pod.mkdir(parents=True)
    spec = pod / "job.yaml"
    spec.write_text(stored("configmaps", f"{name}-spec")["data"]["job.yaml"])
    container = stored(JOBSETS, name)["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"] if "value" in e},
           "TUNEWISE_HOME": str(pod / ".tunewise"), "TUNEWISE_RUN_PUSH_S": "0.3", "JOB_COMPLETION_INDEX": "0"}
    command = [sys.executable, *container["command"][1:-1], str(spec)]  # python -m tunewise.scale.pod SPEC
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    logs = fake_kubectl.root() / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{name}.log").write_text(f"[pod/{name}-node-0-0/trainer] " + done.stderr)
    return done


def test_a_job_waits_for_admission_then_trains_on_its_pod_and_succeeds(cluster):
    job_id = submit(cluster)
    queued = waiting_for_admission(cluster, job_id)
    assert queued["status"] == "queued" and "Kueue has not admitted it to queue 'team-a'" in queued["queue"]["detail"]
    name = kubernetes_name(job_id)
    workload = stored(JOBSETS, name)
    assert workload["spec"]["suspend"] is True and workload["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    spec = yaml.safe_load(stored("configmaps", f"{name}-spec")["data"]["job.yaml"])
    assert spec["checkpoint"]["dir"].endswith(f"/jobs/{job_id}") and spec["data"]["train"].startswith("s3://")

    fake_kubectl.set_status(JOBSETS, name, namespace=NAMESPACE, suspend=False)  # Kueue admits it
    wait_for(lambda: job(cluster, job_id)["status"] == "running", 60, 0.1, "the job to run")
    pod = run_pod(cluster, name)
    assert pod.returncode == 0, pod.stderr[-3000:]
    wait_for(lambda: job(cluster, job_id)["step"] == 4, 60, 0.1, "the steps to reach the server from S3")
    fake_kubectl.set_status(JOBSETS, name, namespace=NAMESPACE, conditions=[{"type": "Completed", "reason": "AllJobsCompleted"}])

    done = wait_for(lambda: (j := job(cluster, job_id))["status"] in ("succeeded", "failed") and j, 60, 0.1, "the end")
    assert done["status"] == "succeeded", done["error"]
    said = messages(cluster, job_id)
    assert any(m.startswith("Waiting for the cluster to admit the job: Kueue") for m in said)
    assert "The cluster admitted the job; its training pods are running" in said
    assert any(m.startswith("Step 4/4: training loss=") for m in said)
    checkpoints = api(cluster, "GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints")["data"]
    assert sorted(c["step_number"] for c in checkpoints) == [2, 4]  # listed from S3
    openai_view = api(cluster, "GET", f"/v1/fine_tuning/jobs/{job_id}")
    assert openai_view["trained_tokens"] > 0 and openai_view["result_files"]
    assert (cluster.home / "runs" / job_id / "artifact" / "adapter_model.safetensors").is_file()
    log = (cluster.home / "jobs" / job_id / "train.log").read_text()
    assert f"jobset {name} in namespace {NAMESPACE}" in log and f"[pod/{name}-node-0-0/trainer]" in log


def test_cluster_failure_pause_and_cancel_reach_the_job(cluster):
    # The cluster gives up on a workload (after its own restarts): the job fails with the cluster's reason.
    failing = submit(cluster)
    waiting_for_admission(cluster, failing)
    fake_kubectl.set_status(JOBSETS, kubernetes_name(failing), namespace=NAMESPACE, conditions=[
        {"type": "Failed", "reason": "FailedJobs", "message": "jobset failed: node-0 reached its backoff limit"}])
    failed = wait_for(lambda: (j := job(cluster, failing))["status"] == "failed" and j, 60, 0.1, "the failure")
    assert failed["error"]["message"] == ("The job failed on the cluster: FailedJobs: jobset failed: node-0 reached "
                                          "its backoff limit")

    # Pause: the workload is deleted in the foreground (its pods get SIGTERM and checkpoint); once gone, the job is paused.
    paused = submit(cluster)
    waiting_for_admission(cluster, paused)
    fake_kubectl.set_status(JOBSETS, kubernetes_name(paused), namespace=NAMESPACE, suspend=False)
    wait_for(lambda: job(cluster, paused)["status"] == "running", 60, 0.1, "the job to run")
    api(cluster, "POST", f"/v1/fine_tuning/jobs/{paused}/pause")
    deleting = wait_for(lambda: (stored(JOBSETS, kubernetes_name(paused)) or {}).get("metadata", {}).get("deletionTimestamp"),
                        30, 0.1, "the foreground delete")
    assert deleting and job(cluster, paused)["status"] == "running"  # until its pods have stopped
    fake_kubectl.object_path(JOBSETS, NAMESPACE, kubernetes_name(paused)).unlink()  # the pods are gone, and so is the JobSet
    wait_for(lambda: job(cluster, paused)["status"] == "paused", 60, 0.1, "the job to pause")

    # Cancel while Kueue still holds it back: every object the job created is deleted.
    cancelled = submit(cluster)
    waiting_for_admission(cluster, cancelled)
    name = kubernetes_name(cancelled)
    assert stored("configmaps", f"{name}-spec") is not None
    assert api(cluster, "POST", f"/v1/fine_tuning/jobs/{cancelled}/cancel")["status"] == "cancelled"
    assert stored(JOBSETS, name) is None and stored("configmaps", f"{name}-spec") is None
    assert any({"delete", "pods", f"tunewise.dev/job={name}", "--force"} <= set(call) for call in fake_kubectl.calls())


def test_a_volcano_gang_waits_until_it_fits_then_runs_and_fails_with_the_clusters_reason(volcano_cluster):
    job_id = submit(volcano_cluster)
    name = kubernetes_name(job_id)
    wait_for(lambda: stored("podgroups.scheduling.volcano.sh", name), 60, 0.1, "the PodGroup")
    group = stored("podgroups.scheduling.volcano.sh", name)
    assert group["spec"]["minMember"] == 1 and group["spec"]["queue"] == "research"
    workload = stored("pytorchjobs.kubeflow.org", name)
    assert workload["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["schedulerName"] == "volcano"
    fake_kubectl.set_status("podgroups.scheduling.volcano.sh", name, namespace=NAMESPACE, conditions=[
        {"type": "Unschedulable", "reason": "NotEnoughResources", "message": "1/1 tasks in gang unschedulable"}])
    fake_kubectl.set_phase("podgroups.scheduling.volcano.sh", name, "Inqueue", namespace=NAMESPACE)
    queued = wait_for(lambda: (j := job(volcano_cluster, job_id))["queue"]["reason"] == "admission" and j, 60, 0.1,
                      "the job to wait for Volcano")
    assert queued["queue"]["detail"] == ("Volcano has not scheduled the gang in queue 'research' (Inqueue: "
                                         "NotEnoughResources: 1/1 tasks in gang unschedulable)")

    fake_kubectl.set_phase("podgroups.scheduling.volcano.sh", name, "Running", namespace=NAMESPACE)
    wait_for(lambda: job(volcano_cluster, job_id)["status"] == "running", 60, 0.1, "the job to run")
    fake_kubectl.set_status("pytorchjobs.kubeflow.org", name, namespace=NAMESPACE, conditions=[
        {"type": "Failed", "reason": "PyTorchJobFailed", "message": "PyTorchJob failed because Master failed"}])
    failed = wait_for(lambda: (j := job(volcano_cluster, job_id))["status"] == "failed" and j, 60, 0.1, "the failure")
    assert "PyTorchJobFailed: PyTorchJob failed because Master failed" in failed["error"]["message"]
