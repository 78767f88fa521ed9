"""Merge an adapter into its base, and load whatever a user names for generation."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from tunewise.errors import ModelError
from tunewise.models.artifact import ARTIFACT_INFO, find_artifact_dir, load_artifact, read_artifact_info
from tunewise.models.device import DevicePolicy, resolve_device_policy


def merge_run(run: str | Path, out: str | Path) -> Path:
    """Fold the run's adapter into its base (merge_and_unload) and save a standalone model."""
    info = read_artifact_info(run)
    if not info.adapter:
        raise ModelError(f"{run}: method {info.method!r} trained the full model; there is no adapter to merge",
                         hint=f"the artifact at {info.path} already loads without peft")
    if info.method in ("prefix", "prompt"):
        raise ModelError(f"{run}: {info.method} tuning adds virtual tokens, which cannot be merged into weights")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"--out {out} exists and is not empty; choose a new directory")
    # Merge in fp32 on CPU: exact, and independent of the training device.
    model, tokenizer, _ = load_artifact(info.path, resolve_device_policy("cpu", "fp32"), merged=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out


_REGISTRY_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))?$")


def load_any(name: str, policy: DevicePolicy | None = None) -> tuple[Any, Any]:
    """A run, an artifact, a registered model (NAME for its production version, NAME@ALIAS, NAME:VERSION,
    verified), a model directory or a base model name -> (model, tokenizer) for inference, on `policy`
    (default: the best device this machine has)."""
    policy = policy or resolve_device_policy()
    try:
        folder = find_artifact_dir(name)
    except ModelError:
        folder = None
    if folder is not None and (folder / ARTIFACT_INFO).is_file():
        model, tokenizer, _ = load_artifact(folder, policy)
        return model, tokenizer
    loaded = _load_registered(name, policy)
    if loaded is not None:
        return loaded
    from tunewise.models.load import load_causal_lm, load_tokenizer
    from tunewise.models.resolve import resolve_base_model

    model_dir = resolve_base_model(name)
    return load_causal_lm(model_dir, policy).eval(), load_tokenizer(model_dir)


def _load_registered(name: str, policy: DevicePolicy) -> tuple[Any, Any] | None:
    """A registered version by NAME / NAME@ALIAS / NAME:VERSION; None when `name` is not registered."""
    from tunewise.models.resolve import BUNDLED

    match = _REGISTRY_REF.match(name)
    if match is None or name in BUNDLED:
        return None
    from tunewise.registry import load_version
    from tunewise.registry.errors import IntegrityError, RegistryError

    ref = match["version"] or match["alias"] or "production"
    try:
        model, tokenizer, _ = load_version(match["name"], ref, policy)
    except IntegrityError:
        raise
    except RegistryError as err:
        if err.message.startswith("no registered model named") and ref == "production" and not match["alias"]:
            return None  # not a registered name: maybe a base model
        raise
    return model, tokenizer
