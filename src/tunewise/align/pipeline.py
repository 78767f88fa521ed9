"""Chained stages in one job: e.g. `sft` then `dpo` on the SFT output.

A staged spec is an ordinary job spec plus `stages:`, a list of partial specs run in order. Each
stage is the top-level spec with the stage's sections merged over it (a stage's `method` replaces
the top-level one whole; `data`, `train`, `checkpoint`, `eval`, `tracking` merge key by key). The first stage starts
from `base_model`; each later stage starts from the previous stage's artifact, merged into full
weights (`<previous run>/merged`), which is also the reference policy DPO-style methods compare to.

    name: support-bot
    base_model: smollm2-135m-instruct
    data: {train: chat.jsonl}
    stages:
      - method: {name: lora, r: 16}
      - method: {name: dpo, beta: 0.1}
        data: {train: preferences.jsonl}
        train: {learning_rate: 5.0e-5}

Each stage is its own run (`<name>-<i>-<method>`), so a re-run skips finished stages and resumes
the one that was interrupted. `tunewise train` runs such a spec through `run_stages`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import SpecError

console = Console(stderr=True)
MERGED_DIR = "merged"
_MERGED_SECTIONS = ("data", "train", "checkpoint", "eval", "tracking")
_STAGE_KEYS = {"name", "method", *_MERGED_SECTIONS}


def stage_dicts(raw: dict[str, Any], *, job_name: str) -> list[dict[str, Any]]:
    """One spec mapping per stage, not yet validated; `run_stages` sets each later stage's base_model."""
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise SpecError("stages: expected a non-empty list of partial job specs")
    top = {k: v for k, v in raw.items() if k != "stages"}
    out = []
    for i, stage in enumerate(stages, start=1):
        if not isinstance(stage, dict):
            raise SpecError(f"stages[{i - 1}]: expected a mapping of {sorted(_STAGE_KEYS)}, got {stage!r}")
        unknown = set(stage) - _STAGE_KEYS
        if unknown:
            raise SpecError(f"stages[{i - 1}]: unknown keys {sorted(unknown)}; a stage may set {sorted(_STAGE_KEYS)}")
        merged = copy.deepcopy(top)
        for section in _MERGED_SECTIONS:
            if section in stage:
                if not isinstance(stage[section], dict):
                    raise SpecError(f"stages[{i - 1}].{section}: expected a mapping of options, got {stage[section]!r}")
                merged[section] = {**(merged.get(section) or {}), **stage[section]}
        if "method" in stage:
            merged["method"] = copy.deepcopy(stage["method"])
        method = merged.get("method", "lora")
        method_name = method if isinstance(method, str) else (method or {}).get("name", "lora")
        merged["name"] = stage.get("name") or f"{job_name}-{i}-{method_name}"
        out.append(merged)
    return out


def run_stages(raw: dict[str, Any] | str | Path, *, overrides: list[str] | None = None, restart: bool = False,
               spec_path: str | Path | None = None) -> list[Any]:
    """Run every stage in order; returns their RunResults.

    Args:
        raw: the staged spec (a mapping, or a YAML file path).
        overrides: dotted overrides applied to every stage (e.g. train.device=cpu).
        restart: discard and redo every stage's run.
        spec_path: where the spec came from (relative data paths resolve from its folder; default name).
    """
    from tunewise.spec import load_spec, resolve_relative_paths
    from tunewise.train.run import run_training_job

    if not isinstance(raw, dict):
        spec_path = Path(raw)
        raw = load_spec(spec_path).model_dump(mode="json", exclude_unset=True)  # every stage checked up front
    job_name = raw.get("name") or (Path(spec_path).stem if spec_path else "job")
    base_folder = Path(spec_path).parent if spec_path else Path.cwd()
    results: list[Any] = []
    start_from = raw.get("base_model")
    for i, stage in enumerate(stage_dicts(raw, job_name=job_name)):
        if i > 0:
            stage["base_model"] = str(handoff(results[-1].run_dir))
        elif start_from is not None:
            stage["base_model"] = start_from
        stage = resolve_relative_paths(stage, base_folder)
        spec = load_spec(raw=stage, overrides=overrides)
        console.rule(f"[bold]stage {i + 1}: {spec.method.name} ({spec.name})")
        results.append(run_training_job(spec, restart=restart))
    return results


def handoff(run_dir: Path) -> Path:
    """The model the next stage starts from: the run's full-weight artifact, or its adapter merged
    into the base (written once to `<run>/merged`)."""
    from tunewise.models.artifact import read_artifact_info
    from tunewise.models.merge import merge_run

    info = read_artifact_info(run_dir)
    if not info.adapter:
        return info.path
    merged = Path(run_dir) / MERGED_DIR
    if (merged / "config.json").is_file():
        return merged
    console.print(f"merging the {info.method} adapter of {Path(run_dir).name} into its base for the next stage")
    return merge_run(run_dir, merged)
