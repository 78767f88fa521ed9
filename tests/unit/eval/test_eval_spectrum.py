"""Adapter spectrum: synthetic LoRA adapters of known rank and singular values."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from tunewise.eval.spectrum import adapter_spectrum, energy_rank, entropy_effective_rank

D_OUT, D_IN = 48, 40


def _write_adapter(folder, singular_values_by_module: dict[str, list[float]], *, r: int, alpha: float, seed=0):
    """An adapter whose update B @ A has exactly the given singular values (before scaling)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, values in singular_values_by_module.items():
        u, _ = torch.linalg.qr(torch.randn(D_OUT, r, generator=gen))
        v, _ = torch.linalg.qr(torch.randn(D_IN, r, generator=gen))
        s = torch.zeros(r)
        s[: len(values)] = torch.tensor(values)
        prefix = f"base_model.model.model.layers.0.{module}"
        tensors[f"{prefix}.lora_B.weight"] = (u * s).contiguous()  # d_out x r
        tensors[f"{prefix}.lora_A.weight"] = v.T.contiguous()  # r x d_in
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "use_rslora": False}))
    return folder


def test_known_rank_three_adapter_is_reported_exactly(tmp_path):
    folder = _write_adapter(tmp_path / "a", {"self_attn.q_proj": [4.0, 2.0, 1.0], "self_attn.v_proj": [3.0, 3.0, 3.0]},
                            r=16, alpha=32)
    report = adapter_spectrum(folder)
    assert report is not None and report.r == 16 and len(report.modules) == 2
    q = next(m for m in report.modules if m.module.endswith("q_proj"))
    assert q.scaling == 2.0
    assert q.singular_values[:3] == pytest.approx([8.0, 4.0, 2.0], rel=1e-6)
    assert max(q.singular_values[3:]) < 1e-6
    assert q.rank_90 == 2  # 64 + 16 = 80 of 84 energy: 95% with two values
    expected_entropy_rank = math.exp(-sum(p * math.log(p) for p in (8 / 14, 4 / 14, 2 / 14)))
    assert q.effective_rank == pytest.approx(expected_entropy_rank, rel=1e-6)
    v = next(m for m in report.modules if m.module.endswith("v_proj"))
    assert v.rank_90 == 3 and v.effective_rank == pytest.approx(3.0, rel=1e-6)
    assert any("rank collapse" in w for w in report.warnings)
    assert report.suggested_r == 4  # the 90th-percentile module needs 3 directions -> next power of two


def test_flat_spectrum_suggests_more_rank(tmp_path):
    folder = _write_adapter(tmp_path / "b", {"self_attn.q_proj": [1.0] * 8, "mlp.up_proj": [1.0, 0.99, 0.98, 0.97,
                                                                                          0.96, 0.95, 0.94, 0.93]},
                            r=8, alpha=16)
    report = adapter_spectrum(folder)
    assert report.median_rank_90 >= 7
    assert any("flat spectrum" in w for w in report.warnings)
    assert report.suggested_r == 16


def test_untrained_adapter_is_reported_as_zero(tmp_path):
    folder = _write_adapter(tmp_path / "c", {"self_attn.q_proj": []}, r=4, alpha=8)
    report = adapter_spectrum(folder)
    assert report.suggested_r is None and "not been trained" in report.warnings[0]


def test_rslora_scaling_and_non_lora_adapters(tmp_path):
    folder = _write_adapter(tmp_path / "d", {"self_attn.q_proj": [1.0]}, r=4, alpha=8)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_rslora": True}))
    assert adapter_spectrum(folder).modules[0].scaling == pytest.approx(8 / 2)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    assert adapter_spectrum(folder) is None


def test_energy_and_entropy_rank_helpers():
    assert energy_rank([3.0, 0.0, 0.0]) == 1
    assert energy_rank([1.0, 1.0, 1.0, 1.0]) == 4
    assert energy_rank([0.0, 0.0]) == 0
    assert entropy_effective_rank([2.0, 2.0]) == pytest.approx(2.0)
