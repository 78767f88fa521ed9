"""The DeepSpeed config tunewise generates from a job spec, read back by DeepSpeed's own parser."""

from __future__ import annotations

import pytest

from tunewise.errors import SpecError
from tunewise.scale.deepspeed import deepspeed_config


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("precision", ["bfloat16", "float16", "float32"])
def test_deepspeed_reads_the_generated_config(stage, precision):
    deepspeed = pytest.importorskip("deepspeed.runtime.config", reason="the deepspeed extra")
    config = deepspeed_config(micro_batch=4, accumulation=8, world=1, stage=stage, precision=precision,
                              max_grad_norm=0.5)
    parsed = deepspeed.DeepSpeedConfig(config)  # raises on unknown keys, wrong types, inconsistent batches
    assert parsed.zero_optimization_stage == stage
    assert (parsed.train_micro_batch_size_per_gpu, parsed.gradient_accumulation_steps) == (4, 8)
    assert parsed.train_batch_size == 32 and parsed.gradient_clipping == 0.5
    assert parsed.bfloat16_config.enabled == (precision == "bfloat16")
    assert parsed.float16_config.enabled == (precision == "float16")


def test_the_global_batch_counts_every_process():
    config = deepspeed_config(micro_batch=2, accumulation=3, world=8, stage=3, precision="bfloat16", max_grad_norm=1.0)
    assert config["train_batch_size"] == 48
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    with pytest.raises(SpecError, match="ZeRO stage 1"):
        deepspeed_config(micro_batch=2, accumulation=3, world=8, stage=1, precision="bfloat16", max_grad_norm=1.0)
