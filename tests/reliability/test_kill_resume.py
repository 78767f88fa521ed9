"""SIGKILL training at 3 random points, re-run the same command after each: the run finishes at the
same step and loss as an uninterrupted one, and no kill ever leaves a corrupt checkpoint.
(bench/reliability.py does the same with 10 kills on the bundled model.)"""

from __future__ import annotations

import os

from tests.helpers import write_chat_dataset
from tests.reliability.kill_resume import kill_and_resume


def test_random_sigkills_then_reruns_end_like_an_uninterrupted_run(tiny_model_dir, tmp_path, workspace):
    data = write_chat_dataset(tmp_path / "train.jsonl", rows=64)
    report = kill_and_resume(tmp_path, base_model=str(tiny_model_dir), data=data, total_steps=18, every_steps=3,
                             kills=3, seed=11, max_length=128, micro_batch=4,
                             env={"TUNEWISE_HOME": str(workspace), "HF_HUB_OFFLINE": "1"})
    assert len(report.kills) == 3
    assert report.ok, "\n".join(report.problems)
    assert all(not k.corrupt for k in report.kills)
