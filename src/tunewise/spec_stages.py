"""A staged job spec, split into one spec mapping per stage (pure mapping work: nothing trains here).

A staged spec is an ordinary job spec plus `stages:`, a list of partial specs run in order. Each
stage is the top-level spec with the stage's sections merged over it (a stage's `method` replaces
the top-level one whole; `data`, `train`, `checkpoint`, `eval`, `tracking` merge key by key):

    name: support-bot
    base_model: smollm2-135m-instruct
    data: {train: chat.jsonl}
    stages:
      - method: {name: lora, r: 16}
      - method: {name: dpo, beta: 0.1}
        data: {train: preferences.jsonl}
        train: {learning_rate: 5.0e-5}

The spec validates every stage through `stage_dicts`; `tunewise.train.run.run_stages` runs them.
"""

from __future__ import annotations

import copy
from typing import Any

from tunewise.errors import SpecError

MERGED_SECTIONS = ("data", "train", "checkpoint", "eval", "tracking")
STAGE_KEYS = {"name", "method", *MERGED_SECTIONS}


def stage_dicts(raw: dict[str, Any], *, job_name: str) -> list[dict[str, Any]]:
    """One spec mapping per stage, not yet validated; `run_stages` sets each later stage's base_model.

    Args:
        raw: the staged spec as a mapping (with `stages`).
        job_name: names the stages' runs, `<job_name>-<i>-<method>`, unless a stage names its own.
    """
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise SpecError("stages: expected a non-empty list of partial job specs")
    top = {k: v for k, v in raw.items() if k != "stages"}
    return [_merge_stage(top, stage, i, job_name) for i, stage in enumerate(stages, start=1)]


def _merge_stage(top: dict[str, Any], stage: Any, i: int, job_name: str) -> dict[str, Any]:
    if not isinstance(stage, dict):
        raise SpecError(f"stages[{i - 1}]: expected a mapping of {sorted(STAGE_KEYS)}, got {stage!r}")
    unknown = set(stage) - STAGE_KEYS
    if unknown:
        raise SpecError(f"stages[{i - 1}]: unknown keys {sorted(unknown)}; a stage may set {sorted(STAGE_KEYS)}")
    merged = copy.deepcopy(top)
    for section in MERGED_SECTIONS:
        if section in stage:
            if not isinstance(stage[section], dict):
                raise SpecError(f"stages[{i - 1}].{section}: expected a mapping of options, got {stage[section]!r}")
            merged[section] = {**(merged.get(section) or {}), **stage[section]}
    if "method" in stage:
        merged["method"] = copy.deepcopy(stage["method"])
    method = merged.get("method", "lora")
    method_name = method if isinstance(method, str) else (method or {}).get("name", "lora")
    merged["name"] = stage.get("name") or f"{job_name}-{i}-{method_name}"
    return merged
