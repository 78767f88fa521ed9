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
from tunewise.train.building_blocks import optimizer_and_scheduler, parameter_summary

console = Console(stderr=True)


class TrainingSession:
    def __init__(self, spec: JobSpec, run_dir: Path):
        self.spec = spec
        self.run_dir = run_dir
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
        if self.spec.train.compile is True:
            from tunewise.train.compile import compile_decoder_layers

            console.print(f"compiling {compile_decoder_layers(model)} decoder layers (the first steps are slower)")
        console.print(parameter_summary(self.method.name, model))
        return model

    def write_artifact(self, model: Any, tokenizer: Any, base_dir: Path) -> Path:
        """Adapter-only for PEFT methods, a whole model for full; written aside, then renamed."""
        target = self.run_dir / "artifact"
        tmp = self.run_dir / "artifact.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "spec.yaml").write_text(self.spec.to_yaml())
        write_artifact_info(tmp, method=self.method.name, adapter=self.method.adapter,
                            base_model=self.spec.base_model, base_model_dir=str(base_dir))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target

    def fit_batch_to_memory(self, base_dir: Path) -> tuple[int, int]:
        """Plan before loading anything onto the device: refuse a job that cannot fit, and shrink the
        micro-batch (raising gradient accumulation, same effective batch) when the asked one does not.

        The decision is stored in the run directory so a resumed run batches its data the same way.
        """
        from tunewise.errors import TunewiseError
        from tunewise.plan.fit import check_job_fit

        stored = self.run_dir / "batch_plan.json"
        if stored.is_file():
            saved = json.loads(stored.read_text())
            return saved["micro_batch_size"], saved["gradient_accumulation"]
        asked_micro, asked_accum = self.spec.train.micro_batch_size, self.spec.train.gradient_accumulation
        fit = check_job_fit(self.spec, base_dir, self.policy)
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
                                      "planned_peak_bytes": fit.peak_bytes, "available_bytes": fit.available_bytes}))
        return micro, accum

    # -- the whole session ------------------------------------------------------------------------

    def run(self) -> Any:
        from tunewise.train.batches import BatchPlan
        from tunewise.train.checkpoint import CheckpointManager, SavePolicy
        from tunewise.train.loop import LoopConfig, resume_if_possible, total_steps_for, train_loop
        from tunewise.train.metrics_log import MetricsLog
        from tunewise.train.building_blocks import RunResult, seed_everything, write_status
        from tunewise.train.state import LoopState

        spec = self.spec
        seed_everything(spec.train.seed)
        base_dir = resolve_base_model(spec.base_model)
        tokenizer = load_tokenizer(base_dir)
        prepared = self.prepare_data(tokenizer)
        micro_batch, accumulation = self.fit_batch_to_memory(base_dir)
        packed = spec.data.packing and not self.method.prepends_virtual_tokens
        plan_args = dict(micro_batch_size=micro_batch, max_length=spec.data.max_length,
                         packed=packed, seed=spec.train.seed, pad_id=tokenizer.pad_token_id)
        plan = BatchPlan(prepared.train, **plan_args)
        val_plan = BatchPlan(prepared.validation, **plan_args) if prepared.validation else None
        if spec.train.compile is True:
            from tunewise.train.compile import fix_batch_width

            fix_batch_width(plan, val_plan)
        total = total_steps_for(plan, spec.train.epochs, accumulation, spec.train.max_steps)
        model = self.build_model(base_dir)
        optimizer, scheduler = optimizer_and_scheduler(spec, model, total)
        manager = CheckpointManager.from_spec(spec.checkpoint, self.run_dir)
        manager.check_writable()
        metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        state = resume_if_possible(manager, model, optimizer, scheduler, self.run_dir / ".staging")
        resumed_from = state.step if state else None
        metrics.truncate_after(resumed_from or 0)  # rows a killed attempt logged past the checkpoint are redone
        if state is not None:
            console.print(f"[green]resuming[/] from checkpoint at step {state.step} of {total}")
        state = state or LoopState()
        write_status(self.run_dir, total_steps=total, step=state.step)
        cfg = LoopConfig(total_steps=total, gradient_accumulation=accumulation,
                         max_grad_norm=spec.train.max_grad_norm, eval_every_steps=spec.train.eval_every_steps,
                         device=self.policy.device, head_only_on_labels=not self.method.prepends_virtual_tokens,
                         staging_dir=self.run_dir / ".staging",
                         auto_compile=spec.train.compile == "auto" and self.policy.device == "cpu" and packed)
        save_policy = SavePolicy.from_spec(spec.checkpoint)
        state = train_loop(model, optimizer, scheduler, plan, val_plan, state, cfg, manager, save_policy, metrics)
        write_status(self.run_dir, tokens_seen=state.tokens_seen)
        artifact = self.write_artifact(model, tokenizer, base_dir)
        console.print(f"artifact: {artifact}")
        return RunResult(self.run_dir, "completed", state.step, resumed_from=resumed_from)
