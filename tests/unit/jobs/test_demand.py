"""A job's demand from the planner: GPUs, memory per GPU, sharing, time; per GPU type and per pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.jobs.builders import pool
from tunewise.jobs.demand import MEMORY_HEADROOM, DemandError, demand_from_mode, job_demand, pool_demand
from tunewise.jobs.schedule_types import Gpu, Node, Pool
from tunewise.plan.hardware import GIB, load_catalog
from tunewise.plan.planner import plan
from tunewise.spec import load_spec

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "data"
TOKENS = 2_000_000


def _spec(model_dir, method="lora", **extra):
    raw = {"base_model": str(model_dir), "data": {"train": str(DATA / "alpaca.jsonl"), "max_length": 256},
           "method": method, **extra}
    return load_spec(raw=raw)


def test_a_small_adapter_job_is_one_shareable_gpu_sized_by_the_planner(tiny_model_dir):
    spec = _spec(tiny_model_dir)
    d = job_demand(spec, "h100-80gb", tokens=TOKENS)
    mode = plan(model=str(tiny_model_dir), gpu="h100-80gb", tokens=TOKENS, seq_len=256, micro_batch=4,
                gradient_checkpointing="off").mode("lora")
    assert (d.gpus, d.nodes, d.gpu_type, d.shareable) == (1, 1, "h100-80gb", True)
    assert d.memory_gib_per_gpu == pytest.approx(mode.memory.peak_bytes / GIB * (1 + MEMORY_HEADROOM), rel=1e-3)
    assert d.estimated_seconds == pytest.approx(mode.hours_per_epoch * 3600, rel=1e-6)
    two = job_demand(_spec(tiny_model_dir, train={"epochs": 2}), "h100-80gb", tokens=TOKENS)
    assert two.estimated_seconds == pytest.approx(2 * d.estimated_seconds)


def test_max_steps_shortens_the_estimate(tiny_model_dir):
    full = job_demand(_spec(tiny_model_dir), "h100-80gb", tokens=TOKENS)
    few = job_demand(_spec(tiny_model_dir, train={"max_steps": 3}), "h100-80gb", tokens=TOKENS)
    assert few.estimated_seconds < full.estimated_seconds / 100


def test_ppo_never_shares_a_card(tiny_model_dir):
    assert not job_demand(_spec(tiny_model_dir, method="ppo"), "h100-80gb", tokens=TOKENS).shareable


def test_big_models_become_gangs_spread_over_nodes():
    device = load_catalog().device("h100-80gb")
    mode = plan(params=70e9, gpu="h100-80gb", tokens=TOKENS).mode("full")
    d = demand_from_mode(mode, device, epochs=1)
    assert d.gpus == mode.gpus_needed > 8 and d.nodes == -(-d.gpus // 8) and not d.shareable
    assert d.memory_gib_per_gpu <= device.memory_gib
    assert demand_from_mode(mode, device, gpus_per_node=4).nodes == -(-d.gpus // 4)


def test_a_job_that_fits_nowhere_is_refused_with_what_would_help():
    device = load_catalog().device("t4")
    mode = plan(params=70e9, gpu="t4", tokens=TOKENS, seq_len=131072, micro_batch=64,
                gradient_checkpointing="off").mode("full")
    with pytest.raises(DemandError, match="does not fit on NVIDIA T4") as err:
        demand_from_mode(mode, device)
    assert "gradient_checkpointing" in str(err.value)


def test_stages_need_the_most_any_stage_needs_for_the_sum_of_their_times(tiny_model_dir):
    staged = load_spec(raw={"base_model": str(tiny_model_dir), "data": {"max_length": 256}, "stages": [
        {"method": "lora", "data": {"train": str(DATA / "alpaca.jsonl")}},
        {"method": "dpo", "data": {"train": str(DATA / "preference.jsonl")}}]})
    d = job_demand(staged, "h100-80gb", tokens=TOKENS)
    lora = job_demand(_spec(tiny_model_dir), "h100-80gb", tokens=TOKENS)
    dpo = job_demand(_spec(tiny_model_dir, method="dpo", data={"train": str(DATA / "preference.jsonl"),
                                                               "max_length": 256}), "h100-80gb", tokens=TOKENS)
    assert d.memory_gib_per_gpu == max(lora.memory_gib_per_gpu, dpo.memory_gib_per_gpu)
    assert d.estimated_seconds == pytest.approx(lora.estimated_seconds + dpo.estimated_seconds)


def test_a_pool_demand_uses_the_type_needing_fewest_gpus_and_measures_the_data(tiny_model_dir):
    mixed = Pool("mixed", (Node("n", (Gpu(0, "t4", 14.6), Gpu(1, "a100-80gb", 79.2))),))
    d = pool_demand(_spec(tiny_model_dir), mixed)
    assert d.gpu_type == "t4" and d.gpus == 1  # both fit on one card: the first declared wins
    assert d.estimated_seconds > 0


def test_cpu_jobs_need_a_cpu_slot(tiny_model_dir):
    d = pool_demand(_spec(tiny_model_dir, train={"device": "cpu"}), pool(gpus=0, cpu_slots=2), tokens=TOKENS)
    assert (d.gpus, d.cpu_slots) == (0, 1) and d.estimated_seconds > 0
    with pytest.raises(DemandError, match="no CPU slots"):
        pool_demand(_spec(tiny_model_dir, train={"device": "cpu"}), pool(gpus=2), tokens=TOKENS)
