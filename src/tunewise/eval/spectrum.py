"""Adapter diagnostics: the singular values of each LoRA module's update, scaling * B @ A.

Practice (see docs/evaluation.md) reads the spectrum to judge the rank: when most singular values
are near zero the rank is higher than needed (rank collapse); when the spectrum is flat, more rank
may help. Read straight from the saved adapter files, so no model is loaded.

The singular values of B @ A (B: d_out x r, A: r x d_in) come from an r x r problem: with
B = Qb Rb and A^T = Qa Ra, B @ A = Qb (Rb Ra^T) Qa^T, so svd(Rb Ra^T) gives them exactly.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from tunewise.eval.report import ModuleSpectrum, SpectrumReport

LORA_FAMILY = ("lora", "dora", "qlora", "rslora")
ENERGY_SHARE = 0.90
COLLAPSE_UTILIZATION = 0.25  # median module needs at most a quarter of r for 90% energy
FLAT_UTILIZATION = 0.90  # median module needs at least 90% of r
ZERO_UPDATE = 1e-12  # sum of squared singular values below this: the adapter has not moved


def update_singular_values(lora_a: Any, lora_b: Any, scaling: float) -> list[float]:
    """Singular values of scaling * B @ A, largest first (length min(r, d_out, d_in))."""
    import torch

    a, b = lora_a.double(), lora_b.double()
    _, r_b = torch.linalg.qr(b)  # b: d_out x r
    _, r_a = torch.linalg.qr(a.T)  # a.T: d_in x r
    values = torch.linalg.svdvals(r_b @ r_a.T) * abs(scaling)
    return [float(v) for v in values]


def energy_rank(values: list[float], share: float = ENERGY_SHARE) -> int:
    """Smallest k such that the top-k singular values hold `share` of the energy (sum of squares)."""
    energy = [v * v for v in values]
    total = sum(energy)
    if total <= ZERO_UPDATE:
        return 0
    running = 0.0
    for k, e in enumerate(energy, 1):
        running += e
        if running >= share * total - 1e-12 * total:
            return k
    return len(values)


def entropy_effective_rank(values: list[float]) -> float:
    """exp(Shannon entropy of s / sum(s)) (Roy & Vetterli, 2007); 0 for a zero update."""
    total = sum(values)
    if total <= 0:
        return 0.0
    probs = [v / total for v in values if v > 0]
    return math.exp(-sum(p * math.log(p) for p in probs))


def _pattern_value(module: str, pattern: dict[str, Any], default: Any) -> Any:
    # peft matches pattern keys against the end of the module name, as a regex.
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def _scaling(config: dict[str, Any], module: str, r: int) -> float:
    alpha = _pattern_value(module, config.get("alpha_pattern", {}), config.get("lora_alpha", r))
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _lora_pairs(tensors: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    pairs: dict[str, tuple[Any, Any]] = {}
    for key, a in tensors.items():
        match = re.match(r"(.+)\.lora_(embedding_)?A(\.[^.]+)?\.weight$", key) or re.match(
            r"(.+)\.lora_embedding_A(\.[^.]+)?$", key)
        if not match:
            continue
        b_key = key.replace("lora_A", "lora_B").replace("lora_embedding_A", "lora_embedding_B")
        if b_key in tensors:
            # Embedding LoRA stores A as r x vocab and B as dim x r: the same product shape rule holds.
            pairs[match.group(1).removeprefix("base_model.model.")] = (a, tensors[b_key])
    return pairs


def adapter_spectrum(artifact_dir: str | Path, method: str = "lora") -> SpectrumReport | None:
    """Spectrum of every LoRA module in a saved adapter; None when the artifact has no LoRA weights."""
    from safetensors.torch import load_file

    folder = Path(artifact_dir)
    config_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    if not str(config.get("peft_type", "")).upper() == "LORA":
        return None
    pairs = _lora_pairs(load_file(str(weights_path)))
    if not pairs:
        return None
    modules = []
    for name, (a, b) in sorted(pairs.items()):
        r = int(a.shape[0])
        scaling = _scaling(config, name, r)
        values = update_singular_values(a, b, scaling)
        modules.append(ModuleSpectrum(module=name, r=r, scaling=scaling, singular_values=values,
                                      rank_90=energy_rank(values), effective_rank=entropy_effective_rank(values)))
    return summarize_spectrum(modules, method=method, r=int(config.get("r", modules[0].r)))


def summarize_spectrum(modules: list[ModuleSpectrum], *, method: str, r: int) -> SpectrumReport:
    """Medians across modules, the warnings they call for, and a suggested rank."""
    live = [m for m in modules if m.rank_90 > 0]
    report = SpectrumReport(method=method, r=r, modules=modules, median_rank_90=0.0,
                            median_effective_rank=0.0, suggested_r=None)
    if not live:
        report.warnings.append("every adapter update is zero: the adapter has not been trained (B is still 0)")
        return report
    report.median_rank_90 = float(statistics.median(m.rank_90 for m in live))
    report.median_effective_rank = float(statistics.median(m.effective_rank for m in live))
    utilization = statistics.median(m.rank_90 / m.r for m in live)
    needed = sorted(m.rank_90 for m in live)[max(0, math.ceil(0.9 * len(live)) - 1)]  # 90th percentile
    suggested = 1 << max(0, math.ceil(math.log2(max(needed, 1))))
    if utilization >= FLAT_UTILIZATION and r > 1:
        suggested = 2 * r
        report.warnings.append(
            f"flat spectrum: the median module needs {report.median_rank_90:g} of r={r} directions for 90% of its "
            f"update; more rank may help (try r={suggested})"
        )
    elif utilization <= COLLAPSE_UTILIZATION and r >= 4:
        report.warnings.append(
            f"rank collapse: the median module uses {report.median_rank_90:g} of r={r} directions for 90% of its "
            f"update; most of the rank is unused (r={suggested} would hold it)"
        )
    report.suggested_r = min(suggested, 2 * r)
    return report
