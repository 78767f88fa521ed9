"""One supervised training session, step by step: data, model, optimizer, resume, loop, artifact."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise.errors import DataError
from tunewise.methods import get_method
from tunewise.models import resolve_base_model, resolve_device_policy
from tunewise.models.artifact import write_artifact_info
from tunewise.models.load import enable_activation_checkpointing, load_causal_lm, load_tokenizer
from tunewise.spec import JobSpec
from tunewise.train.building_blocks import optimizer_and_scheduler, parameter_summary, write_status
from tunewise.train.distributed import SINGLE, Ranks

console = Console(stderr=True)


def store_artifact_remotely(manager: Any, step: int, artifact: Path, run_dir: Path) -> None:
    """With checkpoints on object storage, the artifact goes there too (`<checkpoint.dir>/artifact/`), so
    a job on a machine that goes away leaves its result where the checkpoints are."""
    if not manager.remote:
        return
    uri = manager.save_artifact(step, artifact)
    write_status(run_dir, artifact_uri=uri)
    console.print(f"artifact stored: {uri}")


class TrainingSession:
    """One supervised run, in this process; with several processes (`ranks`) every process runs it,
    and rank 0 alone writes the run directory's reports, metrics, status and artifact."""

    def __init__(self, spec: JobSpec, run_dir: Path, ranks: Ranks = SINGLE):
        self.spec = spec
        self.run_dir = run_dir
        self.ranks = ranks
        self.method = get_method(spec.method.name)
        self.method_cfg = spec.method_config()
        self.policy = resolve_device_policy(spec.train.device, spec.train.precision)

    # -- stages -----------------------------------------------------------------------------------

    def prepare_data(self, tokenizer: Any) -> Any:
        from tunewise.data import prepare_data

        if self.method.kind != "sft":
            raise DataError(f"method {self.method.name!r} is not a supervised method; use its own trainer")
        prepared = prepare_data(self.spec.data, tokenizer, seed=self.spec.train.seed)
        if prepared.kind not in ("conversation", "text"):
            raise DataError(
                f"{self.spec.data.train}: method {self.method.name} learns from answers, but the file holds "
                f"{prepared.kind} rows (format {prepared.format})",
                hint="preference rows train with dpo, orpo, kto or reward; prompt-only rows with ppo or grpo",
            )
        if self.ranks.is_main:
            (self.run_dir / "data_report.json").write_text(json.dumps(prepared.report.to_dict(), indent=2, default=str))
            self._write_validation_records(prepared)
        console.print(
            f"data: format [bold]{prepared.report.format_label or prepared.format}[/], {len(prepared.train)} train / "
            f"{len(prepared.validation)} validation examples"
        )
        return prepared

    def _write_validation_records(self, prepared: Any) -> None:
        records = getattr(prepared, "validation_records", None)
        if records is None:
            return
        folder = self.run_dir / "data"
        folder.mkdir(exist_ok=True)
        with (folder / "validation.jsonl").open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def build_model(self, base_dir: Path) -> Any:
        import torch

        quant = self.method.quantization(self.method_cfg, self.policy.dtype) if self.method.quantization else {}
        torch.manual_seed(self.spec.train.seed)  # adapter initialisation is part of the run's identity
        model = load_causal_lm(base_dir, self.policy, **quant)
        model.config.use_cache = False
        model = self.method.build(model, self.method_cfg)
        from tunewise.train.fused_lora import fuse_lora_layers

        fuse_lora_layers(model)  # a faster path for plain LoRA layers; a no-op for other methods
        if self.spec.train.gradient_checkpointing:
            enable_activation_checkpointing(model)
        if self.spec.train.compile is True and self.ranks.distributed:
            console.print("[yellow]train.compile is not applied with several processes[/]: layers run eagerly")
        elif self.spec.train.compile is True:
            from tunewise.train.compile import compile_decoder_layers

            console.print(f"compiling {compile_decoder_layers(model)} decoder layers (the first steps are slower)")
        console.print(parameter_summary(self.method.name, model))
        return model

    def write_artifact(self, parallel: Any, tokenizer: Any, base_dir: Path) -> Path | None:
        """Adapter-only for PEFT methods, a whole model for full; written aside, then renamed.

        Sharded models are gathered first (every rank takes part); rank 0 writes, the others return None.
        """
        full_state = parallel.full_state_dict(trainable_only=self.method.adapter)
        if not self.ranks.is_main:
            return None
        target = self.run_dir / "artifact"
        tmp = self.run_dir / "artifact.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        extra = {} if full_state is None else {"state_dict": full_state}
        parallel.model.save_pretrained(str(tmp), safe_serialization=True, **extra)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "spec.yaml").write_text(self.spec.to_yaml())
        write_artifact_info(tmp, method=self.method.name, adapter=self.method.adapter,
                            base_model=self.spec.base_model, base_model_dir=str(base_dir))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target

    def plan_parallel_batches(self, base_dir: Path) -> tuple[int, int, str]:
        """(micro-batch, accumulation per process, strategy), decided by rank 0 for every rank (free
        memory differs from process to process, and all must batch and shard alike)."""
        decision = None
        if self.ranks.is_main:
            from tunewise.train.parallel_plan import choose_run_strategy

            strategy, sharding = choose_run_strategy(self.spec, base_dir, self.policy, self.ranks, self.method.adapter)
            decision = (*self.fit_batch_to_memory(base_dir, sharding), strategy)
        return tuple(self.ranks.broadcast(decision))

    def fit_batch_to_memory(self, base_dir: Path, sharding: str = "none") -> tuple[int, int]:
        """Plan before loading anything onto the device: refuse a job that cannot fit, and shrink the
        micro-batch (raising gradient accumulation, same effective batch) when the asked one does not.

        The decision is stored in the run directory so a resumed run batches its data the same way,
        at any number of processes (train/parallel_plan.py).
        """
        from tunewise.errors import TunewiseError
        from tunewise.plan.fit import check_job_fit
        from tunewise.train.parallel_plan import rebatch_for_world

        stored = self.run_dir / "batch_plan.json"
        if stored.is_file():
            return rebatch_for_world(stored, self.ranks.world)
        asked_micro, asked_accum = self.spec.train.micro_batch_size, self.spec.train.gradient_accumulation
        sharers = self.ranks.local_world if self.policy.device == "cpu" else 1
        fit = check_job_fit(self.spec, base_dir, self.policy, num_gpus=self.ranks.world, sharding=sharding,
                            sharers=sharers)
        micro, accum = asked_micro, asked_accum
        if not fit.fits:
            if fit.max_micro_batch < 1:
                raise TunewiseError(fit.message, hint="modes that would fit: " + (", ".join(fit.modes_that_fit) or "none"))
            effective = asked_micro * asked_accum
            micro = max(m for m in range(1, fit.max_micro_batch + 1) if effective % m == 0)
            accum = effective // micro
            console.print(f"[yellow]memory:[/] micro-batch {asked_micro} does not fit "
                          f"({fit.peak_bytes / 2**30:.1f} GiB needed, {fit.available_bytes / 2**30:.1f} GiB free); "
                          f"using micro-batch {micro} x accumulation {accum} (effective batch {effective} kept)")
        else:
            console.print(f"memory: planned peak {fit.peak_bytes / 2**30:.2f} GiB of "
                          f"{fit.available_bytes / 2**30:.1f} GiB free on {self.policy.device}")
        stored.write_text(json.dumps({"micro_batch_size": micro, "gradient_accumulation": accum,
                                      "world_size": self.ranks.world, "planned_peak_bytes": fit.peak_bytes,
                                      "available_bytes": fit.available_bytes}))
        return micro, accum

    # -- the whole session ------------------------------------------------------------------------

    def run(self) -> Any:
        from tunewise.train.batches import BatchPlan
        from tunewise.train.building_blocks import RunResult, seed_everything
        from tunewise.train.checkpoint import CheckpointManager, SavePolicy
        from tunewise.train.loop import LoopConfig, resume_if_possible, total_steps_for, train_loop
        from tunewise.train.metrics_log import MetricsLog
        from tunewise.train.parallel import parallelize
        from tunewise.train.state import LoopState

        spec, ranks = self.spec, self.ranks
        seed_everything(spec.train.seed)
        base_dir = resolve_base_model(spec.base_model)
        tokenizer = load_tokenizer(base_dir)
        prepared = self.prepare_data(tokenizer)
        micro_batch, accumulation, strategy = self.plan_parallel_batches(base_dir)
        packed = spec.data.packing and not self.method.prepends_virtual_tokens
        plan_args = dict(micro_batch_size=micro_batch, max_length=spec.data.max_length,
                         packed=packed, seed=spec.train.seed, pad_id=tokenizer.pad_token_id)
        plan = BatchPlan(prepared.train, **plan_args)
        val_plan = BatchPlan(prepared.validation, **plan_args) if prepared.validation else None
        if spec.train.compile is True and not ranks.distributed:
            from tunewise.train.compile import fix_batch_width

            fix_batch_width(plan, val_plan)
        total = total_steps_for(plan, spec.train.epochs, accumulation * ranks.world, spec.train.max_steps)
        parallel = parallelize(self.build_model(base_dir), strategy, ranks,
                               head_only_on_labels=not self.method.prepends_virtual_tokens)
        optimizer, scheduler = optimizer_and_scheduler(spec, parallel.model, total)
        if ranks.distributed:  # the same start on every rank, then each its own dropout masks
            import torch

            torch.manual_seed(spec.train.seed + ranks.rank)
        if strategy.startswith("deepspeed"):
            from tunewise.scale.deepspeed import deepspeed_model

            parallel = deepspeed_model(parallel, optimizer, spec, micro_batch, accumulation)
        if ranks.distributed:
            console.print(f"{ranks.world} processes: {strategy}, micro-batch {micro_batch} x accumulation "
                          f"{accumulation} x {ranks.world} = {micro_batch * accumulation * ranks.world} sequences a step")
        manager = CheckpointManager.from_spec(spec.checkpoint, self.run_dir)
        if ranks.is_main:
            manager.check_writable()
        metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        cfg = LoopConfig(total_steps=total, gradient_accumulation=accumulation,
                         max_grad_norm=spec.train.max_grad_norm, eval_every_steps=spec.train.eval_every_steps,
                         device=self.policy.device, head_only_on_labels=not self.method.prepends_virtual_tokens,
                         staging_dir=self.run_dir / ".staging", seed=spec.train.seed,
                         auto_compile=(spec.train.compile == "auto" and self.policy.device == "cpu" and packed
                                       and not ranks.distributed))
        state = resume_if_possible(manager, parallel, optimizer, scheduler, cfg)
        resumed_from = state.step if state else None
        if ranks.is_main:
            metrics.truncate_after(resumed_from or 0)  # rows a killed attempt logged past the checkpoint are redone
        if state is not None:
            console.print(f"[green]resuming[/] from checkpoint at step {state.step} of {total}")
        state = state or LoopState()
        if ranks.is_main:
            write_status(self.run_dir, total_steps=total, step=state.step)
        save_policy = SavePolicy.from_spec(spec.checkpoint)
        state = train_loop(parallel, optimizer, scheduler, plan, val_plan, state, cfg, manager, save_policy, metrics)
        if ranks.is_main:
            write_status(self.run_dir, tokens_seen=state.tokens_seen)
        artifact = self.write_artifact(parallel, tokenizer, base_dir)
        if artifact is not None:
            console.print(f"artifact: {artifact}")
            store_artifact_remotely(manager, state.step, artifact, self.run_dir)
        return RunResult(self.run_dir, "completed", state.step, resumed_from=resumed_from)
