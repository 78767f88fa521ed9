"""The resources section, the strategy each combination trains with, and batches kept across world sizes."""

from __future__ import annotations

import json

import pytest

from tunewise.errors import SpecError, TunewiseError
from tunewise.scale.resources import ResourcesSpec
from tunewise.spec import load_spec
from tunewise.train.parallel import choose_strategy
from tunewise.train.parallel_plan import rebatch_for_world
from tunewise.train.state_sharded import owner_rank


def _spec(**resources):
    return load_spec(raw={"data": {"train": "x.jsonl"}, "resources": resources})


def test_defaults_are_one_process():
    spec = _spec()
    assert spec.resources.world_size == 1
    assert spec.resources.sharding == "auto" and spec.resources.engine == "torch"


@pytest.mark.parametrize("resources, field", [
    ({"nproc_per_node": 0}, "resources.nproc_per_node"),
    ({"nnodes": 2, "node_rank": 2}, "node_rank 2 must be below nnodes"),
    ({"rdzv_endpoint": "no-port"}, "is not host:port"),
    ({"engine": "deepspeed", "sharding": "fsdp"}, "not a DeepSpeed stage"),
    ({"backend": "mpi"}, "resources.backend"),
    ({"gpus": 2}, "resources.gpus"),
])
def test_bad_resources_name_the_field(resources, field):
    with pytest.raises(SpecError, match=field):
        _spec(**resources)


def test_resources_do_not_change_the_run_identity():
    # A run resumes on another number of processes: the same content hash, so the same run.
    assert _spec().content_hash() == _spec(nproc_per_node=4, nnodes=2, sharding="fsdp").content_hash()


def test_node_rank_and_endpoint_come_from_the_operator_environment():
    resources = ResourcesSpec(nnodes=4)
    assert resources.resolved_node_rank({"PET_NODE_RANK": "3"}) == 3
    assert resources.resolved_node_rank({"JOB_COMPLETION_INDEX": "2"}) == 2
    assert resources.resolved_node_rank({}) == 0
    assert ResourcesSpec(nnodes=4, node_rank=1).resolved_node_rank({"NODE_RANK": "3"}) == 1
    assert resources.resolved_endpoint({"MASTER_ADDR": "trainer-0", "MASTER_PORT": "29500"}) == "trainer-0:29500"
    assert resources.resolved_endpoint({}) is None


@pytest.mark.parametrize("sharding, engine, adapter, planned, expected", [
    ("auto", "torch", True, "none", "ddp"),          # adapters: data parallel while the planner says it fits
    ("auto", "torch", False, "none", "fsdp-zero2"),  # full fine-tuning always shards its optimizer states
    ("auto", "torch", True, "zero3", "fsdp"),        # an adapter on a base too large for one device
    ("auto", "torch", False, "zero3", "fsdp"),
    ("none", "torch", False, None, "ddp"),
    ("fsdp", "torch", True, None, "fsdp"),
    ("zero2", "deepspeed", False, None, "deepspeed-zero2"),
    ("auto", "deepspeed", False, "zero3", "deepspeed-zero3"),
])
def test_strategy_follows_the_planner(sharding, engine, adapter, planned, expected):
    assert choose_strategy(sharding, engine, world=2, adapter=adapter, planned=planned) == expected
    assert choose_strategy(sharding, engine, world=1, adapter=adapter, planned=planned) == "single"


def test_a_step_keeps_its_micro_batches_on_another_number_of_processes(tmp_path):
    stored = tmp_path / "batch_plan.json"
    stored.write_text(json.dumps({"micro_batch_size": 2, "gradient_accumulation": 2, "world_size": 2}))
    assert rebatch_for_world(stored, 2) == (2, 2)
    assert rebatch_for_world(stored, 1) == (2, 4)  # 4 micro-batches a step, all in one process
    assert json.loads(stored.read_text())["world_size"] == 1
    assert rebatch_for_world(stored, 4) == (2, 1)
    with pytest.raises(TunewiseError, match="3 processes cannot share them evenly") as caught:
        rebatch_for_world(stored, 3)
    assert "1, 2, 4" in caught.value.hint


def test_one_process_plans_read_as_world_size_one(tmp_path):
    stored = tmp_path / "batch_plan.json"  # written before runs had a world size
    stored.write_text(json.dumps({"micro_batch_size": 4, "gradient_accumulation": 2}))
    assert rebatch_for_world(stored, 2) == (4, 1)


def test_each_rank_stores_the_files_it_wrote():
    assert owner_rank("dcp/__1_0.distcp") == 1
    assert owner_rank("dcp/__12_3.distcp") == 12
    assert owner_rank("rng/rank-3.pt") == 3
    assert owner_rank("dcp/.metadata") == 0
    assert owner_rank("scheduler.pt") == 0
