"""`tunewise plan`: memory, time and cost of each adaptation mode, and which one to use."""

from __future__ import annotations

from typing import Any

import typer

from tunewise.cli import _panels
from tunewise.plan.request import AlignmentPolicy, Checkpointing, Objective, Optimizer, PlanRequest, Precision

_F = PlanRequest.model_fields


def _opt(field: str, *flags: str, **kwargs: Any) -> Any:
    """A typer option whose default and help text come from PlanRequest (defined once)."""
    info = _F[field]
    return typer.Option(info.default, *flags, help=info.description, **kwargs)


def plan_command(
    model: str | None = _opt("model", "--model", "-m"),
    params: float | None = _opt("params", "--params"),
    layers: int | None = _opt("layers", "--layers"),
    hidden: int | None = _opt("hidden", "--hidden"),
    vocab: int | None = _opt("vocab", "--vocab"),
    intermediate: int | None = _opt("intermediate", "--intermediate"),
    heads: int | None = _opt("heads", "--heads"),
    kv_heads: int | None = _opt("kv_heads", "--kv-heads"),
    data: str | None = _opt("data", "--data"),
    tokens: int | None = _opt("tokens", "--tokens"),
    examples: int | None = _opt("examples", "--examples"),
    mean_example_tokens: int = _opt("mean_example_tokens", "--mean-example-tokens"),
    gpu: str = _opt("gpu", "--gpu"),
    gpus: int = _opt("gpus", "--gpus"),
    hardware: str | None = _opt("hardware", "--hardware"),
    seq_len: int = _opt("seq_len", "--seq-len"),
    micro_batch: int = _opt("micro_batch", "--micro-batch"),
    gradient_checkpointing: Checkpointing = _opt("gradient_checkpointing", "--gradient-checkpointing"),
    precision: Precision = _opt("precision", "--precision"),
    optimizer: Optimizer = _opt("optimizer", "--optimizer"),
    lora_r: int = _opt("lora_r", "--lora-r"),
    lora_targets: str = _opt("lora_targets", "--lora-targets"),
    lora_dropout: float = _opt("lora_dropout", "--lora-dropout"),
    alignment_policy: AlignmentPolicy = _opt("alignment_policy", "--alignment-policy"),
    objective: Objective = _opt("objective", "--objective"),
    variants: int = _opt("variants", "--variants"),
    budget_usd: float | None = _opt("budget_usd", "--budget"),
    epochs: float = _opt("epochs", "--epochs"),
    tokenizer_change: bool = _opt("tokenizer_change", "--tokenizer-change"),
    reward_signal: bool = _opt("reward_signal", "--reward-signal"),
    checkpointing: bool = _opt("checkpointing", "--checkpointing/--no-checkpointing"),
    checkpoints_kept: int = _opt("checkpoints_kept", "--checkpoints-kept"),
    storage_months: float = _opt("storage_months", "--storage-months"),
    gpu_hours_per_week: float | None = _opt("gpu_hours_per_week", "--gpu-hours-per-week"),
    measure: bool = typer.Option(False, "--measure", help="Run a few real training steps of full, lora, qlora and dora "
                                 "on this machine and print estimate against measurement."),
    save: bool = typer.Option(False, "--save", help="With --measure: keep the measured throughput for later plans."),
    steps: int = typer.Option(3, "--steps", min=2, help="With --measure: steps per mode (the first is a warm-up)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Estimate peak memory, GPUs, time and cost of full, lora, qlora, dora, dpo and ppo; recommend one.

    Exits 2 when nothing fits the hardware and budget.
    """
    from pydantic import ValidationError

    from tunewise.cli._common import console, print_json
    from tunewise.errors import SpecError
    from tunewise.plan.planner import PlanRefused, plan
    from tunewise.plan.render import render_plan

    options = {k: v for k, v in locals().items() if k in _F}
    try:
        request = PlanRequest(**options)
    except ValidationError as err:
        problems = "; ".join(f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in err.errors())
        raise SpecError(problems) from None
    measurements = None
    if measure:
        measurements = _measure(request, save=save, steps=steps, quiet=as_json)
    report = plan(request)
    if as_json:
        payload = report.to_json()
        if measurements is not None:
            payload["measurements"] = [m.to_json() for m in measurements]
        print_json(payload)
    else:
        render_plan(report, console)
    if report.recommendation.mode is None:
        raise PlanRefused("no adaptation mode fits: " + report.recommendation.reasons[-1])


def _measure(request: PlanRequest, *, save: bool, steps: int, quiet: bool) -> list:
    from tunewise.cli._common import console
    from tunewise.errors import SpecError
    from tunewise.plan.measure import measure_modes, save_calibration
    from tunewise.plan.render import render_measurements
    from tunewise.spec import BUNDLED_MODEL

    if request.params:
        raise SpecError("--measure needs a model that is here (--model), not --params")
    ckpt = request.gradient_checkpointing == "on"
    model = request.model or BUNDLED_MODEL
    if not quiet:
        console.print(f"[dim]measuring {model}: {steps} steps per mode at seq {request.seq_len} x micro-batch "
                      f"{request.micro_batch}, each mode in its own process...[/]")
    results = measure_modes(model, seq_len=request.seq_len, micro_batch=request.micro_batch, steps=steps,
                            gradient_checkpointing=ckpt)
    saved = str(save_calibration(model, results)) if save else None
    if not quiet:
        render_measurements(results, console, saved)
    return results


def register(app: typer.Typer) -> None:
    app.command("plan", rich_help_panel=_panels.PLAN)(plan_command)
