"""Costs past the GPU bill: checkpoint storage, serving many variants, spot pricing, and renting
against owning the hardware."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.plan.architecture import ModelShape
from tunewise.plan.hardware import Catalog, Device

GB = 1e9  # storage is billed in decimal gigabytes
HOURS_PER_WEEK = 24 * 7
WEEKS_PER_YEAR = 52


@dataclass(frozen=True)
class ArtifactSizes:
    full_model_gb: float  # one complete copy of the model in bf16
    adapter_gb: float  # one LoRA adapter (fp32, as peft saves it)


def artifact_sizes(shape: ModelShape, adapter_params: int) -> ArtifactSizes:
    return ArtifactSizes(full_model_gb=shape.total_params * 2 / GB, adapter_gb=adapter_params * 4 / GB)


def checkpoint_storage(*, adapter: bool, sizes: ArtifactSizes, trainable_params: int, kept: int, months: float,
                       usd_per_gb_month: float) -> dict:
    """Checkpoints kept x size. A resumable checkpoint holds the trained weights and both AdamW moments."""
    if adapter:
        per_checkpoint = sizes.adapter_gb * 3  # adapter + two fp32 moments of the same size
    else:
        per_checkpoint = sizes.full_model_gb + trainable_params * 8 / GB  # bf16 weights + fp32 m and v
    total = per_checkpoint * kept
    return {
        "checkpoints_kept": kept,
        "gb_per_checkpoint": round(per_checkpoint, 3),
        "total_gb": round(total, 3),
        "usd_per_gb_month": usd_per_gb_month,
        "months": months,
        "cost_usd": round(total * usd_per_gb_month * months, 2),
    }


def serving_storage(variants: int, sizes: ArtifactSizes) -> dict:
    """N variants as N full copies against one base plus N adapters."""
    full = variants * sizes.full_model_gb
    peft = sizes.full_model_gb + variants * sizes.adapter_gb
    return {
        "variants": variants,
        "full_copies_gb": round(full, 2),
        "base_plus_adapters_gb": round(peft, 2),
        "saved_gb": round(full - peft, 2),
    }


def spot_offer(cost_usd: float, catalog: Catalog, *, checkpointing: bool) -> dict | None:
    """Spot/preemptible price; offered only when checkpoints let a preempted run resume."""
    if not checkpointing:
        return None
    discount = float(catalog.costs.get("spot_discount", 0.0))
    return {"discount": discount, "cost_usd": round(cost_usd * (1 - discount), 2)}


def cloud_vs_owned(device: Device, catalog: Catalog, *, gpu_hours_per_week: float) -> dict | None:
    """Break-even between renting and owning one GPU: weekly write-off of the purchase against the
    hourly saving (cloud price minus electricity), at the catalog's lifetime and power figures."""
    if device.is_cpu or not device.purchase_usd or not device.power_w or device.price.mid <= 0:
        return None
    costs = catalog.costs
    lifetime_years = float(costs.get("lifetime_years", 4))
    kwh = float(costs.get("electricity_usd_per_kwh", 0.15))
    power_usd_per_hour = device.power_w / 1000 * float(costs.get("pue", 1.0)) * kwh
    write_off_per_week = device.purchase_usd / (lifetime_years * WEEKS_PER_YEAR)
    saving_per_hour = device.price.mid - power_usd_per_hour
    break_even = write_off_per_week / saving_per_hour if saving_per_hour > 0 else float("inf")
    cloud_week = gpu_hours_per_week * device.price.mid
    owned_week = write_off_per_week + gpu_hours_per_week * power_usd_per_hour
    return {
        "gpu_hours_per_week": gpu_hours_per_week,
        "cloud_usd_per_week": round(cloud_week, 2),
        "owned_usd_per_week": round(owned_week, 2),
        "purchase_usd": device.purchase_usd,
        "lifetime_years": lifetime_years,
        "power_usd_per_hour": round(power_usd_per_hour, 3),
        "break_even_hours_per_week": round(break_even, 1),
        "cheaper": "owned" if owned_week < cloud_week else "cloud",
    }
