"""One alignment run on a TRL trainer, step by step: data, trainer, resume, train, artifact.

Each alignment method supplies `make_trainer(job, data, callbacks)`; everything around it (the
run directory, checkpoints, metrics, resume, the artifact) is the same for all of them and lives here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.align.data import AlignData, Need, load_align_data, write_data_files
from tunewise.logs import quiet_libraries
from tunewise.models.device import DevicePolicy
from tunewise.spec import JobSpec
from tunewise.train.building_blocks import RunResult, parameter_summary, seed_everything

console = Console(stderr=True)


@dataclass
class AlignJob:
    """What a method's `make_trainer` needs: the spec, its options, the base and where things go."""

    spec: JobSpec
    run_dir: Path
    cfg: Any  # the method's options (a pydantic model with adapter + lora)
    policy: DevicePolicy
    base_dir: Path
    tokenizer: Any
    # Set by make_trainer: the frozen reference copy (full weights), for the KL probe.
    ref_model: Any = field(default=None, repr=False)


MakeTrainer = Callable[[AlignJob, AlignData, list], Any]


def run_trl_job(spec: JobSpec, run_dir: Path, *, need: Need, make_trainer: MakeTrainer, kl_probe: bool = True,
                evaluate: bool = True, kl_warn: float | None = None, renames: dict[str, str] | None = None,
                row_tools: bool = True) -> Any:
    """Train `spec` with the TRL trainer `make_trainer` builds and fill `run_dir`.

    Args:
        need: the data the method takes (see align.data.load_align_data).
        kl_probe: measure KL(policy || reference) on held-out answers while training (see align.callbacks).
        evaluate: compute validation metrics at each checkpoint (make_trainer must pass the eval set).
        kl_warn: nats of KL past which a warning is printed and recorded.
        renames: method-specific metric names (TRL name -> tunewise name).
        row_tools: the trainer hands each row's tools to the chat template (see align.data.load_align_data).
    Returns a tunewise.train.building_blocks.RunResult.
    """
    from tunewise.align.callbacks import RunDirCallback
    from tunewise.align.probe import KLProbe
    from tunewise.train.checkpoint import CheckpointManager, SavePolicy
    from tunewise.train.distributed import current_ranks
    from tunewise.train.metrics_log import MetricsLog
    from tunewise.train.session import store_artifact_remotely

    ranks = current_ranks()  # under several processes: TRL trains through accelerate's DDP, data sharded by rank

    job, data = start_align_job(spec, run_dir, need, row_tools=row_tools)
    manager = CheckpointManager.from_spec(spec.checkpoint, run_dir)
    if ranks.is_main:
        manager.check_writable()  # fail now, not at the first save
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    probe_rows = data.validation or data.train
    callback = RunDirCallback(
        run_dir, manager, SavePolicy.from_spec(spec.checkpoint), metrics, has_validation=evaluate and bool(data.validation),
        eval_every_steps=spec.train.eval_every_steps, kl_warn=kl_warn, renames=renames,
        kl_probe=KLProbe(probe_rows, job.tokenizer, max_length=spec.data.max_length) if kl_probe else None,
        ranks=ranks,
    )
    trainer = make_trainer(job, data, [callback])
    quiet_libraries()  # TRL brings datasets in: its logger, too, to the run's log file
    _quiet(trainer)
    callback.ref_model = job.ref_model
    _print_parameters(spec.method.name, trainer.model)

    # Each rank fetches for itself (into its own folder: two downloads must not share one).
    fetched = manager.fetch_latest(dest=run_dir / ".staging" / f"rank-{ranks.rank}")
    resumed_from = fetched[0].step if fetched else None
    if ranks.is_main:
        metrics.truncate_after(resumed_from or 0)  # rows a killed attempt logged past the checkpoint are redone
    if fetched is not None:
        console.print(f"[green]resuming[/] from checkpoint at step {resumed_from}")
    try:
        trainer.train(resume_from_checkpoint=str(fetched[1]) if fetched else None)
    finally:
        callback.close()
    if callback.stopped_at is not None:
        from tunewise.train.stop import TrainingStopped

        raise TrainingStopped(callback.stopped_at)
    ranks.barrier()
    if ranks.is_main:
        artifact = write_artifact(job, trainer.model)
        console.print(f"artifact: {artifact}")
        store_artifact_remotely(manager, trainer.state.global_step, artifact, run_dir)
        shutil.rmtree(run_dir / ".staging", ignore_errors=True)
    return RunResult(run_dir, "completed", trainer.state.global_step, resumed_from=resumed_from)


def start_align_job(spec: JobSpec, run_dir: Path, need: Need, *, row_tools: bool = True) -> tuple[AlignJob, AlignData]:
    """What every alignment run does first: seed, resolve the base and the device, load and record the
    data (`need` and `row_tools`: see align.data.load_align_data), and refuse a job that cannot fit
    before any model loads."""
    from tunewise.models import resolve_base_model, resolve_device_policy
    from tunewise.models.load import load_tokenizer
    from tunewise.train.distributed import current_ranks

    ranks = current_ranks()
    seed_everything(spec.train.seed)
    base_dir = resolve_base_model(spec.base_model)
    job = AlignJob(spec, run_dir, spec.method_config(), resolve_device_policy(spec.train.device, spec.train.precision),
                   base_dir, load_tokenizer(base_dir))
    data = load_align_data(spec, job.tokenizer, spec.method.name, need, row_tools=row_tools)
    if ranks.is_main:
        write_data_files(run_dir, data)
    console.print(f"data: {data.shape}, {len(data.train)} train / {len(data.validation)} validation rows")
    require_fit(spec, base_dir, job.policy, sharers=ranks.local_world if job.policy.device == "cpu" else 1)
    return job, data


def require_fit(spec: JobSpec, base_dir: Path, policy: DevicePolicy, *, sharers: int = 1) -> None:
    """Plan before any model loads, as supervised training does: refuse a job whose estimated peak
    memory exceeds what the device has free (or train.memory_limit_gb). The asked micro-batch is
    kept, so a run batches the same way when it resumes; the error says what would fit."""
    from tunewise.errors import TunewiseError
    from tunewise.plan.fit import check_job_fit

    fit = check_job_fit(spec, base_dir, policy, sharers=sharers)
    if not fit.fits:
        raise TunewiseError(fit.message, hint="lower train.micro_batch_size (raise train.gradient_accumulation to "
                            "keep the batch) or data.max_length, or train an adapter (method.adapter: lora or qlora)")
    console.print(f"memory: planned peak {fit.peak_bytes / 2**30:.2f} GiB of "
                  f"{fit.available_bytes / 2**30:.1f} GiB free on {policy.device}")


def write_artifact(job: AlignJob, model: Any) -> Path:
    """`<run>/artifact/`: the adapter or the whole model, tokenizer, spec and tunewise.json; written aside, then renamed."""
    from tunewise.models.artifact import write_artifact_info

    target, tmp = job.run_dir / "artifact", job.run_dir / "artifact.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    job.tokenizer.save_pretrained(str(tmp))
    (tmp / "spec.yaml").write_text(job.spec.to_yaml())
    write_artifact_info(tmp, method=job.spec.method.name, adapter=getattr(job.cfg, "adapter", "none") != "none",
                        base_model=job.spec.base_model, base_model_dir=str(job.base_dir))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _quiet(trainer: Any) -> None:
    # Without tqdm, transformers prints every log dict to stdout; metrics.jsonl and the progress bar say it already.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _print_parameters(method: str, model: Any) -> None:
    console.print(parameter_summary(method, model))
