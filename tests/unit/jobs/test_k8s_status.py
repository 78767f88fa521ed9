"""How the Kubernetes executor reads each kind's status, and how it refuses bad options."""

from __future__ import annotations

import pytest
import yaml

from tunewise.errors import SpecError
from tunewise.jobs.executors import make_executor
from tunewise.jobs.executors.base import Launch, Poll
from tunewise.jobs.schedule_types import Placement
from tunewise.jobs.executors.k8s_status import workload_poll


def _obj(kind: str, *conditions: tuple[str, str, str], suspend: bool = False, deleting: bool = False) -> dict:
    spec = {"runPolicy": {"suspend": suspend}} if kind == "PyTorchJob" else {"suspend": suspend}
    metadata = {"name": "bot", **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"kind": kind, "metadata": metadata, "spec": spec, "status": {"conditions": [
        {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions]}}


@pytest.mark.parametrize(("kind", "done"), [("TrainJob", "Complete"), ("PyTorchJob", "Succeeded"), ("JobSet", "Completed")])
def test_each_kinds_conditions(kind, done):
    assert workload_poll(_obj(kind, suspend=True), queue="team-a") == Poll(
        "waiting", reason="Kueue has not admitted it to queue 'team-a'")
    assert workload_poll(_obj(kind, ("Created", "", ""))) == Poll("running")
    assert workload_poll(_obj(kind, ("Created", "", ""), (done, "", ""))) == Poll("exited", 0)
    assert workload_poll(_obj(kind, ("Failed", "BackoffLimitExceeded", "pod node-1 failed"))) == Poll(
        "failed", reason="BackoffLimitExceeded: pod node-1 failed")
    assert workload_poll(None) == Poll("gone")


def test_kueue_preemption_and_a_stop_under_way():
    # Kueue preempted the workload: suspended again, with its reason; the job waits to be admitted again.
    preempted = _obj("JobSet", ("Suspended", "Preempted", "preempted by a higher-priority workload"), suspend=True)
    assert workload_poll(preempted, queue="q").reason == ("Kueue has not admitted it to queue 'q' "
                                                          "(Preempted: preempted by a higher-priority workload)")
    assert workload_poll(_obj("JobSet", deleting=True)) == Poll("running")  # its pods are checkpointing


def test_a_volcano_gang_waits_until_every_member_fits():
    group = {"status": {"phase": "Inqueue", "conditions": [
        {"type": "Unschedulable", "status": "True", "reason": "NotEnoughResources", "message": "2/2 tasks in gang unschedulable"}]}}
    waiting = workload_poll(_obj("PyTorchJob", ("Created", "", "")), group, queue="research", gang="volcano")
    assert waiting == Poll("waiting", reason="Volcano has not scheduled the gang in queue 'research' (Inqueue: "
                                             "NotEnoughResources: 2/2 tasks in gang unschedulable)")
    assert workload_poll(_obj("PyTorchJob"), {"status": {"phase": "Running"}}, gang="volcano") == Poll("running")


@pytest.mark.parametrize(("options", "message"), [
    ({}, "storage"),
    ({"storage": "/mnt/shared"}, "is not an object-store URL"),
    ({"storage": "s3://b/x", "shape": "deployment"}, "shape"),
    ({"storage": "s3://b/x", "volume": ["x"]}, "volume"),
    ({"storage": "s3://b/x", "volumes": ["nocolon"]}, "CLAIM:/mount/path"),
])
def test_bad_options_name_the_option(options, message):
    with pytest.raises(SpecError) as err:
        make_executor("kubernetes", **options)
    assert message in str(err.value.message) and "Traceback" not in str(err.value.message)


def test_a_cluster_that_does_not_answer_changes_nothing(tmp_path):
    """kubectl failing (here: `false`) is neither an exit nor an error for the job: the last known state stands."""
    executor = make_executor("kubernetes", storage="memory://jobs/tunewise", kubectl="false")
    handle = {"executor": "kubernetes", "kind": "JobSet", "resource": "jobsets.jobset.x-k8s.io", "name": "bot",
              "namespace": "default", "objects": [["jobsets.jobset.x-k8s.io", "bot"], ["configmaps", "bot-spec"]],
              "checkpoints": "memory://jobs/tunewise/bot", "run_url": "memory://jobs/tunewise/bot/run",
              "run_dir": str(tmp_path / "run"), "log": str(tmp_path / "train.log")}
    assert executor.poll(handle) == Poll("running")
    executor.stop(handle)
    executor.cancel(handle)  # logged, not raised: the API's cancel still cancels the job


@pytest.mark.parametrize(("spec", "field"), [
    ({"stages": [{"name": "sft"}]}, "stages"),
    ({"method": {"name": "grpo", "reward_functions": ["/srv/jobs/x/grader.py"]}}, "method.reward_functions"),
])
def test_jobs_pods_cannot_run_are_refused_at_start(tmp_path, spec, field):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"base_model": "tiny", **spec}))
    executor = make_executor("kubernetes", storage="memory://jobs/tunewise", kubectl="false")
    launch = Launch(job_id="ftjob-1", spec_path=path, run_dir=tmp_path / "run", log_path=tmp_path / "log",
                    placement=Placement(slots=()))
    with pytest.raises(SpecError, match=field):
        executor.start(launch)
