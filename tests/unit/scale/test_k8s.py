"""`tunewise k8s render`: every shape (TrainJob, PyTorchJob, JobSet x Kueue, Volcano, none) renders
objects that Kubernetes' own schemas accept (kubernetes-validate) and custom resources whose every
field is in the projects' published APIs (tests/fixtures/k8s/custom_resources.yaml)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.k8s_schemas import validate_object
from tunewise.errors import SpecError
from tunewise.scale.k8s import (
    K8sTarget,
    kubernetes_name,
    pod_path_warnings,
    render,
    to_yaml,
)
from tunewise.spec import load_spec


def _spec(model_dir, **changes):
    raw = {"name": "support_bot.v2", "base_model": str(model_dir), "method": "lora",
           "data": {"train": "/data/chat.jsonl", "max_length": 256},
           "checkpoint": {"dir": "s3://bucket/runs/support-bot"}, **changes}
    return load_spec(raw=raw)


# --- every shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gang", ["kueue", "volcano", "none"])
@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob", "jobset"])
def test_every_shape_validates(tiny_model_dir, kind, gang):
    spec = _spec(tiny_model_dir, resources={"nproc_per_node": 4, "nnodes": 2})
    target = K8sTarget(kind=kind, gang=gang, queue="team-a", priority_class="training-high", priority=500,
                       volumes=(("datasets", "/data"),), secret="s3-credentials")
    objects, placement = render(spec, target, name=spec.name)
    assert (placement.nnodes, placement.nproc_per_node) == (2, 4)
    kinds = [o["kind"] for o in objects]
    for obj in objects:
        validate_object(obj)
    workload = objects[-1]
    assert workload["metadata"]["name"] == "support-bot-v2"
    stored = load_spec(raw=yaml.safe_load(objects[0]["data"]["job.yaml"]))
    assert (stored.resources.nnodes, stored.resources.nproc_per_node) == (2, 4)
    if gang == "kueue":
        assert workload["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert workload["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "training-high"
        assert "WorkloadPriorityClass" in kinds
        assert _suspended(workload), "Kueue admits a job created suspended, all of its pods or none"
    else:
        assert not _suspended(workload) and "kueue.x-k8s.io/queue-name" not in workload["metadata"]["labels"]
    if gang == "volcano" and kind != "trainjob":
        group = next(o for o in objects if o["kind"] == "PodGroup")
        assert group["spec"]["minMember"] == 2 and group["spec"]["queue"] == "team-a"
        assert group["spec"]["minResources"]["nvidia.com/gpu"] == "8"
        for template in _pod_templates(workload):
            assert template["spec"]["schedulerName"] == "volcano"
            assert template["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == group["metadata"]["name"]
    if gang == "volcano" and kind == "trainjob":
        runtime = next(o for o in objects if o["kind"] == "TrainingRuntime")
        assert runtime["spec"]["podGroupPolicy"] == {"volcano": {}}
        assert workload["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "name": runtime["metadata"]["name"],
                                                  "kind": "TrainingRuntime"}
    containers = _containers(workload)
    assert {json.dumps([c["image"], c["command"]]) for c in containers} == {
        json.dumps(["ghcr.io/tunewise/tunewise:0.1.0", ["python", "-m", "tunewise.scale.pod", "/etc/tunewise/job.yaml"]])}
    for container in containers:  # where the pod holding rank 0 pushes status.json and metrics.jsonl
        assert {"name": "TUNEWISE_RUN_URL", "value": "s3://bucket/runs/support-bot/run"} in container["env"]
    assert yaml.safe_load_all(to_yaml(objects))  # one YAML stream


def _suspended(workload: dict) -> bool:
    spec = workload["spec"]
    return bool(spec.get("suspend") or spec.get("runPolicy", {}).get("suspend"))


def _pod_templates(workload: dict) -> list[dict]:
    if workload["kind"] == "PyTorchJob":
        return [r["template"] for r in workload["spec"]["pytorchReplicaSpecs"].values()]
    return [j["template"]["spec"]["template"] for j in workload["spec"]["replicatedJobs"]]


def _containers(workload: dict) -> list[dict]:
    if workload["kind"] == "TrainJob":
        return [workload["spec"]["trainer"]]
    return [c for t in _pod_templates(workload) for c in t["spec"]["containers"]]


def test_each_operator_tells_the_pods_their_node_rank(tiny_model_dir):
    spec = _spec(tiny_model_dir, resources={"nproc_per_node": 2, "nnodes": 3})
    jobset = render(spec, K8sTarget(kind="jobset"), name="job")[0][-1]
    indexed = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert (indexed["completionMode"], indexed["completions"], indexed["parallelism"]) == ("Indexed", 3, 3)
    env = {e["name"]: e["value"] for e in indexed["template"]["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "job-node-0-0.job"  # JobSet's hostname for pod 0 of job 0
    pytorch = render(spec, K8sTarget(kind="pytorchjob"), name="job")[0][-1]
    assert pytorch["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    assert pytorch["spec"]["nprocPerNode"] == "2"
    train_job = render(spec, K8sTarget(kind="trainjob"), name="job")[0][-1]
    assert (train_job["spec"]["trainer"]["numNodes"], train_job["spec"]["trainer"]["numProcPerNode"]) == (3, 2)


# --- placement from the plan -----------------------------------------------------------------------


def test_a_small_job_gets_a_mig_slice(tiny_model_dir):
    objects, placement = render(_spec(tiny_model_dir), K8sTarget(gpu="a100-80gb"), name="small")
    assert placement.world_size == 1 and placement.accelerator.startswith("nvidia.com/mig-")
    assert placement.accelerator in objects[-1]["spec"]["trainer"]["resourcesPerNode"]["limits"]


def test_the_plan_sizes_a_large_full_fine_tune(tiny_model_dir):
    data = {"train": "/data/chat.jsonl", "max_length": 4096}
    spec = _spec(tiny_model_dir, method="full", data=data)
    _, lora = render(_spec(tiny_model_dir, data=data), K8sTarget(gpu="a100-80gb", params=8e9), name="x")
    assert (lora.world_size, lora.accelerator) == (1, "nvidia.com/gpu")  # an 8B LoRA: one whole GPU
    _, full = render(spec, K8sTarget(gpu="a100-40gb", params=70e9, kind="jobset"), name="x")
    assert full.world_size > 8 and full.nnodes > 1 and full.nproc_per_node == 8
    assert full.sharding == "zero3" and full.scheduling.startswith("gang")


def test_resources_given_in_the_spec_are_kept_with_a_note(tiny_model_dir):
    spec = _spec(tiny_model_dir, method="full", resources={"nproc_per_node": 1})
    _, placement = render(spec, K8sTarget(gpu="a100-40gb", params=70e9), name="x")
    assert placement.world_size == 1 and "the spec asks for 1" in placement.notes[0]


# --- bad input ---------------------------------------------------------------------------------------


def test_checkpoints_must_be_on_object_storage(tiny_model_dir):
    spec = _spec(tiny_model_dir, checkpoint={"dir": "/mnt/ckpt"})
    with pytest.raises(SpecError, match="checkpoint.dir: on Kubernetes checkpoints must be on object storage"):
        render(spec, K8sTarget(), name="x")


@pytest.mark.parametrize("options, message", [
    ({"kind": "deployment"}, "--kind 'deployment'"),
    ({"gang": "yunikorn"}, "--gang 'yunikorn'"),
    ({"volumes": (("Bad_Claim", "/data"),)}, "--volume Bad_Claim:/data"),
    ({"volumes": (("data", "relative"),)}, "--volume data:relative"),
])
def test_bad_targets_name_the_option(options, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        K8sTarget(**options)


def test_paths_the_pods_cannot_see_are_named(tiny_model_dir):
    spec = _spec(tiny_model_dir)
    warnings = pod_path_warnings(spec, K8sTarget(volumes=(("datasets", "/data"),)))
    assert [w.split(" ")[0] for w in warnings] == ["base_model"]
    assert len(pod_path_warnings(spec, K8sTarget())) == 2
    assert kubernetes_name("My_Run.v2") == "my-run-v2"
