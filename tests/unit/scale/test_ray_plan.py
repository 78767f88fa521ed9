"""The Ray executor's decisions without a cluster: Ray Train's scaling from a job's resources, whether a
cluster's nodes can ever hold the gang, GPU shares, the options' validation, and a job that cannot
fit staying queued with its reason."""

from __future__ import annotations

import time

import pytest
import yaml
from sqlalchemy import select

from tunewise.errors import SpecError
from tunewise.jobs.executors import WaitForCapacity, make_executor
from tunewise.jobs.executors.base import Launch
from tunewise.jobs.schedule_types import Placement, Slot
from tunewise.scale.ray_cluster import RayOptions, gang_problem, gpu_share, scaling_plan
from tunewise.scale.resources import ResourcesSpec

ADDRESS = "10.0.0.5:6379"
HEAD = {"CPU": 2.0, "memory": 8e9}
NODE = {"CPU": 1.0, "memory": 8e9}


def _plan(nproc: int, nnodes: int = 1, **options) -> dict:
    return scaling_plan(ResourcesSpec(nproc_per_node=nproc, nnodes=nnodes), RayOptions(address=ADDRESS, **options))


def test_one_node_jobs_are_strict_pack_and_multi_node_jobs_use_the_configured_strategy():
    assert _plan(2) == {"num_workers": 2, "use_gpu": False, "resources_per_worker": {"CPU": 1.0},
                        "placement_strategy": "STRICT_PACK"}
    spread = _plan(2, nnodes=3, multi_node_strategy="SPREAD", cpus_per_worker=4, gpus_per_worker=1)
    assert spread == {"num_workers": 6, "use_gpu": True, "resources_per_worker": {"CPU": 4, "GPU": 1},
                      "placement_strategy": "SPREAD"}
    assert _plan(1, nnodes=2)["placement_strategy"] == "PACK"  # the default across nodes


def test_a_gang_fits_only_where_the_nodes_can_hold_it_whole():
    assert gang_problem([HEAD, NODE], _plan(2)) is None
    problem = gang_problem([HEAD, NODE], _plan(4))
    assert problem == "needs 4 workers x 1 CPU on one node; the largest of the Ray cluster's 2 node(s) holds 2"
    assert gang_problem([HEAD, NODE], _plan(1, nnodes=3)) is None  # PACK: 2 on the head, 1 on the node
    assert "hold 3 in all" in gang_problem([HEAD, NODE], _plan(2, nnodes=2))
    assert gang_problem([HEAD, NODE], _plan(1, nnodes=2, multi_node_strategy="STRICT_SPREAD")) is None
    assert "2 such node(s)" in gang_problem([HEAD, NODE], _plan(1, nnodes=3, multi_node_strategy="STRICT_SPREAD"))
    no_gpu = gang_problem([HEAD, NODE], _plan(1, gpus_per_worker=0.5))
    assert no_gpu.startswith("needs 1 worker x 1 CPU, 0.5 GPU on one node")
    assert gang_problem([], _plan(1)).endswith("0 node(s) holds 0")


def test_a_job_sharing_a_gpu_takes_its_share_of_one():
    assert gpu_share(20, 80) == 0.25
    assert gpu_share(30, 80) == 0.38  # rounded up: never less than its memory's share
    assert gpu_share(80, 80) == gpu_share(20, None) == 1.0


def test_options_travel_to_the_driver_through_its_environment():
    options = RayOptions(address=ADDRESS, cpus_per_worker=2, max_failures=0, extra_env={"A": "1"})
    assert RayOptions.from_env(options.to_env()) == options
    assert RayOptions.from_env({}) is None
    with pytest.raises(SpecError, match="TUNEWISE_RAY_OPTIONS: not valid JSON"):
        RayOptions.from_env({"TUNEWISE_RAY_ADDRESS": ADDRESS, "TUNEWISE_RAY_OPTIONS": "{"})
    with pytest.raises(SpecError, match="expected a JSON object of cpus_per_worker"):
        RayOptions.from_env({"TUNEWISE_RAY_ADDRESS": ADDRESS, "TUNEWISE_RAY_OPTIONS": '{"cpus": 1}'})


@pytest.mark.parametrize(("options", "message"), [
    ({}, "executor.options.address: the Ray executor needs"),
    ({"address": "http://head"}, "executor.options.address: 'http://head' is not a Ray address"),
    ({"address": ADDRESS, "cpus": 2}, "executor.options.cpus: not an option of the Ray executor"),
    ({"address": ADDRESS, "cpus_per_worker": 0}, "executor.options.cpus_per_worker: must be above 0"),
    ({"address": ADDRESS, "multi_node_strategy": "ANY"}, "executor.options.multi_node_strategy: 'ANY'"),
    ({"address": ADDRESS, "max_failures": "2"}, "executor.options.max_failures: '2' is not an integer"),
])
def test_bad_executor_options_are_named(options, message):
    with pytest.raises(SpecError, match=message):
        make_executor("ray", **options)


def _launch(tmp_path, placement: Placement, resources: dict | None = None) -> Launch:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"resources": resources} if resources else {}))
    return Launch(job_id="ftjob-x", spec_path=spec, run_dir=tmp_path / "run", log_path=tmp_path / "train.log",
                  placement=placement)


def test_the_executor_refuses_a_gang_the_cluster_cannot_hold_before_starting_anything(tmp_path, monkeypatch):
    import tunewise.jobs.executors.ray as ray_executor

    monkeypatch.setattr(ray_executor, "alive_nodes", lambda address: [HEAD, NODE])
    executor = make_executor("ray", address=ADDRESS)
    with pytest.raises(WaitForCapacity, match="at 10.0.0.5:6379 cannot hold this job: needs 4 workers"):
        executor.start(_launch(tmp_path, Placement((Slot(node="local", cpu_slots=1),)), {"nproc_per_node": 4}))
    assert not (tmp_path / "train.log").exists()

    def unreachable(address):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(ray_executor, "alive_nodes", unreachable)
    with pytest.raises(WaitForCapacity, match=r"does not answer \(connection refused\)"):
        executor.start(_launch(tmp_path, Placement(())))


def test_gpu_workers_from_the_placement(tmp_path):
    executor = make_executor("ray", address=ADDRESS, gpu_memory_gib=80)
    share = Placement((Slot(node="n", gpu=0, memory_gib=20),))
    whole = Placement((Slot(node="n", gpu=0, memory_gib=80), Slot(node="n", gpu=1, memory_gib=80)))
    assert executor._gpus_per_worker(share) == 0.25
    assert executor._gpus_per_worker(whole) == 1.0
    assert executor._gpus_per_worker(Placement((Slot(node="n", cpu_slots=1),))) == 0.0


def test_a_job_the_cluster_cannot_hold_stays_queued_with_the_reason_said_once(tmp_path):
    from tunewise.jobs.blobs import BlobStore
    from tunewise.jobs.controller import Controller
    from tunewise.jobs.policy import load_policy
    from tunewise.jobs.settings import JobSettings
    from tunewise.jobs.store.db import Database
    from tunewise.jobs.store.models import Job, JobEvent

    class Full:
        name = "ray"

        def start(self, launch):
            raise WaitForCapacity("the Ray cluster at x cannot hold this job: needs 4 workers")

    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    policy = load_policy({})
    controller = Controller(db, JobSettings(home=tmp_path), BlobStore(tmp_path / "files"), Full(), policy)
    with db.session() as session:
        session.add(Job(id="ftjob-big", team="t", status="queued", model="tiny", seed=1, spec={"name": "big"},
                        model_token="abcd1234", created_at=time.time(), queued_at=time.time(), suffix=None,
                        demand={"cpu_slots": 1}, attempts=0))
    controller.schedule()
    with db.session() as session:
        job = session.scalar(select(Job).where(Job.id == "ftjob-big"))
        job.not_before = None  # as if the retry delay had passed
        job.wait_reason, job.wait_detail = "capacity", "the pool's slot is busy"  # the scheduler's reason meanwhile
    controller.schedule()
    with db.session() as session:
        job = session.scalar(select(Job).where(Job.id == "ftjob-big"))
        events = [e.message for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job.id))]
        assert job.status == "queued" and job.attempts == 0 and job.handle is None
        assert job.wait_reason == "capacity"
        assert job.wait_detail == "the Ray cluster at x cannot hold this job: needs 4 workers"
        assert job.not_before > time.time()
    assert events == ["Waiting: the Ray cluster at x cannot hold this job: needs 4 workers"]
    db.close()


def test_an_unreachable_cluster_is_said_at_once():
    pytest.importorskip("ray", reason="needs ray[train]")
    from tests.control_plane_support import free_port
    from tunewise.scale.ray_cluster import alive_nodes

    started = time.monotonic()
    with pytest.raises(ConnectionError):
        alive_nodes(f"127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 5
