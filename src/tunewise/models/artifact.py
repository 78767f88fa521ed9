"""Trained artifacts: an adapter (peft) or a full model, with tokenizer, chat template and spec.

Layout of `<run>/artifact/`:
  tunewise.json                 {"format_version", "method", "adapter", "base_model", "base_model_dir"}
  adapter_config.json + adapter_model.safetensors   (adapter methods)  or  config.json + model.safetensors (full)
  tokenizer files + chat_template.jinja             (the template used in training, reused at inference)
  spec.yaml                     the resolved job spec
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import ModelError
from tunewise.models.device import DevicePolicy, resolve_device_policy

ARTIFACT_INFO = "tunewise.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    method: str
    adapter: bool
    base_model: str
    base_model_dir: str


def write_artifact_info(path: Path, *, method: str, adapter: bool, base_model: str, base_model_dir: str) -> None:
    info = {
        "format_version": FORMAT_VERSION,
        "method": method,
        "adapter": adapter,
        "base_model": base_model,
        "base_model_dir": base_model_dir,
    }
    (path / ARTIFACT_INFO).write_text(json.dumps(info, indent=2) + "\n")


def find_artifact_dir(path: str | Path) -> Path:
    """Accept a run directory, a run name under the workspace, or an artifact directory."""
    from tunewise.workspace import runs_dir

    candidates = [Path(path), Path(path) / "artifact", runs_dir() / str(path) / "artifact"]
    for candidate in candidates:
        if (candidate / ARTIFACT_INFO).is_file():
            return candidate
    raise ModelError(
        f"{path}: no trained artifact found (looked for {ARTIFACT_INFO} in the directory, its artifact/ folder, "
        "and the workspace's runs)",
        hint="give a run directory or name from `tunewise train`, or a model directory",
    )


def read_artifact_info(path: str | Path) -> ArtifactInfo:
    folder = find_artifact_dir(path)
    data = json.loads((folder / ARTIFACT_INFO).read_text())
    return ArtifactInfo(
        path=folder,
        method=data["method"],
        adapter=bool(data["adapter"]),
        base_model=data["base_model"],
        base_model_dir=data["base_model_dir"],
    )


def _base_dir(info: ArtifactInfo) -> Path:
    base_dir = Path(info.base_model_dir)
    if base_dir.is_dir():
        return base_dir
    from tunewise.models.resolve import resolve_base_model

    return resolve_base_model(info.base_model)


def load_artifact(path: str | Path, policy: DevicePolicy | None = None, *, merged: bool = False) -> tuple[Any, Any, ArtifactInfo]:
    """Load a trained artifact for inference: (model in eval mode, tokenizer, info).

    Adapter artifacts load the base then the adapter (peft); `merged=True` folds it into the
    weights. Plain model directories (no tunewise.json) load as they are. A reward model is
    refused: `tunewise.align.reward_model.load_reward_model` loads it with its score head.
    """
    from tunewise.models.load import load_causal_lm, load_tokenizer

    policy = policy or resolve_device_policy()
    if not (Path(path) / ARTIFACT_INFO).is_file() and (Path(path) / "config.json").is_file():
        model = load_causal_lm(path, policy)
        info = ArtifactInfo(Path(path), "none", False, str(path), str(path))
        return model.eval(), load_tokenizer(path), info
    info = read_artifact_info(path)
    if info.method == "reward":  # a score head on the base, not a language model
        raise ModelError(
            f"{path}: a reward model scores answers and cannot be loaded as a causal language model",
            hint="load it with tunewise.align.reward_model.load_reward_model (or score with RewardScorer.load)",
        )
    tokenizer = load_tokenizer(info.path)
    if not info.adapter:
        return load_causal_lm(info.path, policy).eval(), tokenizer, info
    from peft import PeftModel

    base = load_causal_lm(_base_dir(info), policy)
    model = PeftModel.from_pretrained(base, str(info.path))
    if merged:
        model = model.merge_and_unload()
    return model.eval(), tokenizer, info
