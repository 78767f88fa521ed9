"""check_fit: the training loop's guard against jobs that cannot fit."""

from __future__ import annotations

from tunewise.methods import get_method
from tunewise.plan.fit import check_fit

GIB = 2**30


def test_refuses_an_impossible_job(bundled_model_dir):
    decision = check_fit(bundled_model_dir, "full", get_method("full").config_class(), seq_len=8192, micro_batch=64,
                         gradient_checkpointing=False, device="cpu", dtype_bytes=4, available_bytes=2 * GIB)
    assert not decision.fits
    assert decision.peak_bytes > decision.available_bytes == 2 * GIB
    assert decision.max_micro_batch == 0
    assert decision.message.startswith("does not fit")
    assert "largest part: activations" in decision.message
    assert sum(decision.breakdown.values()) == decision.peak_bytes


def test_fits_and_finds_the_largest_micro_batch(bundled_model_dir):
    cfg = get_method("lora").config_class()
    decision = check_fit(bundled_model_dir, "lora", cfg, seq_len=256, micro_batch=1, gradient_checkpointing=False,
                         device="cpu", dtype_bytes=4, available_bytes=8 * GIB)
    assert decision.fits and decision.message.startswith("fits")
    assert decision.max_micro_batch > 1
    above = check_fit(bundled_model_dir, "lora", cfg, seq_len=256, micro_batch=decision.max_micro_batch + 1,
                      gradient_checkpointing=False, device="cpu", dtype_bytes=4, available_bytes=8 * GIB)
    assert not above.fits
    assert set(decision.modes_that_fit) == {"full", "lora", "qlora", "dora"}


def test_suggests_what_would_fit(tiny_model_dir):
    decision = check_fit(tiny_model_dir, "full", None, seq_len=2048, micro_batch=16, gradient_checkpointing=False,
                         device="cpu", dtype_bytes=4, available_bytes=3 * GIB)
    assert not decision.fits and decision.max_micro_batch >= 1
    assert f"micro_batch <= {decision.max_micro_batch} fits" in decision.message


def test_accepts_a_config_and_other_methods(tiny_model_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    for method in ("qlora", "dora", "ia3", "prompt", "dpo"):
        cfg = get_method(method).config_class() if method != "dpo" else None
        decision = check_fit(config, method, cfg, seq_len=128, micro_batch=2, gradient_checkpointing=True,
                             device="cuda", dtype_bytes=2, available_bytes=80 * GIB)
        assert decision.fits, method


def test_default_available_memory_on_cpu_is_psutil(tiny_model_dir):
    import psutil

    decision = check_fit(tiny_model_dir, "lora", None, seq_len=64, micro_batch=1, gradient_checkpointing=False,
                         device="cpu", dtype_bytes=4)
    assert abs(decision.available_bytes - psutil.virtual_memory().available) < 2 * GIB


def test_alignment_configs_are_planned_by_their_adapter_choice(bundled_model_dir):
    from tunewise.plan.architecture import shape_from_model_dir

    dpo = get_method("dpo").config_class
    params = shape_from_model_dir(bundled_model_dir).total_params

    def plan(cfg, method="dpo"):
        return check_fit(bundled_model_dir, method, cfg, seq_len=128, micro_batch=1, gradient_checkpointing=False,
                         device="cpu", dtype_bytes=4, available_bytes=64 * GIB)

    lora, full, qlora = plan(dpo(lora={"r": 8})), plan(dpo(adapter="none")), plan(dpo(adapter="qlora", lora={"r": 8}))
    # Full weights: fp32 AdamW moments for every weight (plus the step's scratch) and a frozen reference
    # copy; the adapter needs neither.
    assert 8 * params <= full.breakdown["optimizer_states"] < 10 * params
    assert full.breakdown["reference_model"] == full.breakdown["weights"] == 4 * params
    assert "reference_model" not in lora.breakdown and lora.breakdown["optimizer_states"] < 0.02 * 8 * params
    assert lora.peak_bytes < full.peak_bytes - 1 * GIB
    assert qlora.breakdown["weights"] < lora.breakdown["weights"] / 2  # a 4-bit base
    assert plan(dpo(lora={"r": 64})).breakdown["optimizer_states"] > lora.breakdown["optimizer_states"]
    for method in ("orpo", "kto", "reward", "ppo", "grpo"):
        cfg = get_method(method).config_class
        assert plan(cfg(lora={"r": 8}), method).peak_bytes < plan(cfg(adapter="none"), method).peak_bytes, method


def test_cpu_plans_with_heap_headroom(bundled_model_dir):
    """On CPU the estimate must fit with 30% to spare (glibc keeps freed heap pages); CUDA has no such margin."""
    cfg = get_method("lora").config_class()

    def fit(available: float, device: str = "cpu"):
        return check_fit(bundled_model_dir, "lora", cfg, seq_len=256, micro_batch=2, gradient_checkpointing=False,
                         device=device, dtype_bytes=4, available_bytes=int(available))

    peak = fit(64 * GIB).peak_bytes
    tight = fit(peak * 1.2)
    assert not tight.fits and "30% headroom for CPU heap slack" in tight.message
    assert fit(peak * 1.31).fits
    cuda_peak = fit(64 * GIB, "cuda").peak_bytes
    assert fit(cuda_peak * 1.01, "cuda").fits


def test_a_4bit_base_on_cpu_plans_with_more_headroom(bundled_model_dir):
    cfg = get_method("qlora").config_class()

    def fit(available: float):
        return check_fit(bundled_model_dir, "qlora", cfg, seq_len=256, micro_batch=2, gradient_checkpointing=False,
                         device="cpu", dtype_bytes=4, available_bytes=int(available))

    peak = fit(64 * GIB).peak_bytes
    assert not fit(peak * 1.5).fits and "60% headroom" in fit(peak * 1.5).message
    assert fit(peak * 1.61).fits
