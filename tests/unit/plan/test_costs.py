"""Costs past the GPU bill: storage, serving, spot pricing, renting against owning."""

from __future__ import annotations

import pytest

from tunewise.plan.architecture import shape_from_params
from tunewise.plan.costs import (
    artifact_sizes,
    checkpoint_storage,
    cloud_vs_owned,
    serving_storage,
    spot_offer,
)
from tunewise.plan.hardware import load_catalog


def test_serving_many_variants():
    sizes = artifact_sizes(shape_from_params(7e9), adapter_params=40_000_000)
    out = serving_storage(10, sizes)
    assert out["full_copies_gb"] == pytest.approx(10 * 6.74e9 * 2 / 1e9, rel=0.01)  # ~135 GB
    assert out["base_plus_adapters_gb"] == pytest.approx(13.5 + 10 * 0.16, rel=0.01)


def test_checkpoint_storage_full_against_adapter():
    sizes = artifact_sizes(shape_from_params(7e9), adapter_params=40_000_000)
    full = checkpoint_storage(adapter=False, sizes=sizes, trainable_params=6_738_415_616, kept=20, months=1,
                              usd_per_gb_month=0.023)
    lora = checkpoint_storage(adapter=True, sizes=sizes, trainable_params=40_000_000, kept=20, months=1,
                              usd_per_gb_month=0.023)
    assert full["cost_usd"] > 100 * lora["cost_usd"]
    assert full["gb_per_checkpoint"] == pytest.approx(13.5 + 53.9, rel=0.01)  # bf16 weights + fp32 moments


def test_spot_needs_checkpointing():
    catalog = load_catalog()
    assert spot_offer(100.0, catalog, checkpointing=False) is None
    assert spot_offer(100.0, catalog, checkpointing=True)["cost_usd"] == pytest.approx(30.0)


def test_break_even_near_forty_hours_a_week():
    catalog = load_catalog()
    h100 = cloud_vs_owned(catalog.device("h100-80gb"), catalog, gpu_hours_per_week=10)
    assert 30 <= h100["break_even_hours_per_week"] <= 50  # "more than 40 hours/week" (Introl, 2025)
    assert h100["cheaper"] == "cloud"
    busy = cloud_vs_owned(catalog.device("h100-80gb"), catalog, gpu_hours_per_week=100)
    assert busy["cheaper"] == "owned"
    assert cloud_vs_owned(catalog.device("cpu"), catalog, gpu_hours_per_week=10) is None
