"""The launcher's decisions that need no processes: rendezvous, shared storage, and which failure to report."""

from __future__ import annotations

import json
import signal

import pytest
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from tunewise.errors import SpecError
from tunewise.scale.launch import _failure_error, check_shared_checkpoints, launch_config
from tunewise.scale.resources import ResourcesSpec
from tunewise.spec import load_spec


def test_one_machine_meets_on_a_free_local_port():
    config = launch_config(ResourcesSpec(nproc_per_node=4), 0, run_id="r")
    assert (config.rdzv_backend, config.rdzv_endpoint, config.nproc_per_node, config.max_restarts) == \
        ("c10d", "localhost:0", 4, 0)


def test_several_machines_meet_at_node_zero_with_fixed_ranks(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "trainer-0.trainer")
    monkeypatch.setenv("MASTER_PORT", "29500")
    config = launch_config(ResourcesSpec(nproc_per_node=8, nnodes=4), 3, run_id="r")
    assert (config.rdzv_backend, config.rdzv_endpoint, config.rdzv_configs["rank"]) == ("static", "trainer-0.trainer:29500", 3)
    assert (config.min_nodes, config.max_nodes) == (4, 4)
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(SpecError, match="resources.rdzv_endpoint"):
        launch_config(ResourcesSpec(nproc_per_node=8, nnodes=4), 3, run_id="r")


def test_several_machines_need_shared_checkpoints():
    raw = {"data": {"train": "x.jsonl"}, "resources": {"nnodes": 2}}
    with pytest.raises(SpecError, match="checkpoint.dir"):
        check_shared_checkpoints(load_spec(raw=raw))
    check_shared_checkpoints(load_spec(raw={**raw, "checkpoint": {"dir": "s3://bucket/x"}}))
    check_shared_checkpoints(load_spec(raw={**raw, "checkpoint": {"dir": "/shared/nfs/x"}}))


def test_the_rank_that_died_is_named_not_the_ones_the_launcher_stopped(tmp_path):
    # The agent lists failures in the order it found them: rank 1 died, then it stopped rank 0.
    failures = {1: ProcessFailure(1, 101, -signal.SIGKILL, "none"), 0: ProcessFailure(0, 100, -signal.SIGKILL, "none")}
    error = _failure_error(failures, tmp_path, tmp_path)
    assert error.exit_code == 1
    assert "rank 1 (pid 101) was killed by SIGKILL" in error.message and "rank-1.log" in error.message
    crashed = {1: ProcessFailure(1, 7, 3, "none")}
    assert "exited with code 3" in _failure_error(crashed, tmp_path, tmp_path).message


def test_a_workers_own_error_is_the_jobs_error(tmp_path):
    (tmp_path / "rank-1.error.json").write_text(json.dumps({"message": "data.train: no rows", "hint": "check it",
                                                           "exit_code": 2}))
    error = _failure_error({1: ProcessFailure(1, 7, 2, "none")}, tmp_path, tmp_path)
    assert (error.message, error.hint, error.exit_code) == ("data.train: no rows", "check it", 2)


def test_workers_that_stopped_on_request_stop_the_job(tmp_path):
    from tunewise.train.stop import EXIT_STOPPED, TrainingStopped

    for rank in (0, 1):
        (tmp_path / f"rank-{rank}.error.json").write_text(json.dumps({"message": "stopped", "exit_code": 3,
                                                                      "stopped_at": 4}))
    error = _failure_error({0: ProcessFailure(0, 7, 3, "none"), 1: ProcessFailure(1, 8, 3, "none")}, tmp_path, tmp_path)
    assert isinstance(error, TrainingStopped) and error.step == 4 and error.exit_code == EXIT_STOPPED
