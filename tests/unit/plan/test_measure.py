"""Real peak memory of the bundled model on CPU against the estimate (the --measure machinery)."""

from __future__ import annotations

import pytest

from tunewise.plan.measure import measure_modes


@pytest.mark.slow
def test_measured_peak_within_20_percent_of_the_estimate():
    results = measure_modes("smollm2-135m-instruct", modes=("full", "lora", "qlora"), seq_len=128, micro_batch=2,
                            steps=2, device="cpu")
    report = {r.mode: (r.estimated_peak_bytes, r.measured_peak_bytes, r.relative_error, r.error) for r in results}
    print("\nmode: estimated, measured bytes, relative error", report)
    for r in results:
        assert r.error is None and r.skipped is None, report
        assert abs(r.relative_error) <= 0.20, report
        assert r.measured_tokens_per_s > 0
