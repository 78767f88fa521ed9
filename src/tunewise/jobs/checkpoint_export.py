"""A job's checkpoint as a servable artifact, so `ft:...:ckpt-step-N` answers chat like the final model.

A checkpoint holds what training needs to resume (trainable weights, optimizer, RNG, data
position); serving needs an artifact (`tunewise.models.artifact`: adapter or model, tokenizer, chat
template, `tunewise.json`). The first request for a checkpoint builds that artifact from it (the
method wraps the base model as in training, the checkpoint's weights are loaded, the result is
saved as the run's artifact would be) under `<workspace>/jobs/<id>/checkpoint-artifacts/`; later
requests reuse it. Checkpoints of TRL-trained methods already hold a peft adapter, which is copied.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from tunewise.errors import CheckpointError
from tunewise.jobs.rundirs import stage_run_dirs
from tunewise.jobs.settings import JobSettings
from tunewise.train.checkpoint import step_dir_name

_lock = threading.Lock()
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def checkpoint_artifact(settings: JobSettings, job_id: str, spec: dict, step: int) -> Path:
    """The artifact directory for checkpoint `step` of a job, built on first use."""
    target = settings.job_dir(job_id) / "checkpoint-artifacts" / step_dir_name(step)
    with _lock:
        if (target / "tunewise.json").is_file():
            return target
        run_dir = next((d for d in reversed(stage_run_dirs(settings, job_id, spec))
                        if (d / "checkpoints" / step_dir_name(step)).is_dir()), None)
        if run_dir is None:
            raise CheckpointError(f"job {job_id} has no checkpoint at step {step} (pruned, or never written)")
        _build(run_dir, step, target)
        return target


def _build(run_dir: Path, step: int, target: Path) -> None:
    from tunewise.models import resolve_base_model
    from tunewise.models.artifact import write_artifact_info
    from tunewise.models.load import load_tokenizer
    from tunewise.spec import load_spec
    from tunewise.train.checkpoint import CheckpointManager

    spec = load_spec(run_dir / "spec.yaml")
    manager = CheckpointManager.from_spec(spec.checkpoint, run_dir)
    info = next((i for i in manager.list() if i.step == step), None)
    if info is None:
        raise CheckpointError(f"{run_dir.name}: checkpoint at step {step} is incomplete")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    staging = run_dir.parent.parent / "scratch" / "checkpoint-export" / f"{run_dir.name}-{step}"
    folder = Path(manager.fetch(info, dest=staging))
    try:
        base_dir = resolve_base_model(spec.base_model)
        adapter = next((p.parent for p in folder.rglob("adapter_config.json")), None)
        if adapter is not None:  # a TRL checkpoint: its adapter is already peft's
            tmp.mkdir(parents=True)
            for name in ADAPTER_FILES:
                shutil.copy2(adapter / name, tmp / name)
        else:
            _save_from_trainable(spec, run_dir, base_dir, folder / "trainable.safetensors", tmp)
        load_tokenizer(base_dir).save_pretrained(str(tmp))
        _copy_chat_template(run_dir, tmp)
        (tmp / "spec.yaml").write_text(spec.to_yaml())
        from tunewise.methods import get_method

        method = get_method(spec.method.name)
        write_artifact_info(tmp, method=method.name, adapter=method.adapter, base_model=spec.base_model,
                            base_model_dir=str(base_dir))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _save_from_trainable(spec, run_dir: Path, base_dir: Path, weights: Path, out: Path) -> None:
    """Wrap the base as training did, load the checkpoint's trainable weights, save like the artifact."""
    import torch
    from safetensors.torch import load_file

    from tunewise.train.session import TrainingSession

    session = TrainingSession(spec, run_dir)
    model = session.build_model(base_dir)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in load_file(str(weights)).items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    model.save_pretrained(str(out), safe_serialization=True)


def _copy_chat_template(run_dir: Path, out: Path) -> None:
    template = run_dir / "artifact" / "chat_template.jinja"
    if template.is_file():
        shutil.copy2(template, out / template.name)
