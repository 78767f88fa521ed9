"""Rich tables for `tunewise plan` and `tunewise diagnose` (their --json twins are the reports' to_json())."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box

from tunewise.plan.hardware import GIB
from tunewise.plan.planner import NO_DATASET

if TYPE_CHECKING:
    from rich.console import Console

    from tunewise.plan.diagnose import Diagnosis
    from tunewise.plan.measure import Measurement
    from tunewise.plan.planner import PlanReport

# Tables that fit 80 columns: a rule under the header, one space between columns, no outer border.
_COMPACT = dict(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)


def _gb(value: float) -> str:
    """GiB in at most 5 characters, 3 significant digits below 1000: 0.27, 6.67, 66.7, 1015."""
    if not value:
        return "-"
    gib = value / GIB
    return f"{gib:.2f}" if gib < 10 else f"{gib:.1f}" if gib < 1000 else f"{gib:.0f}"


def _hours(h: float | None) -> str:
    if h is None or h == float("inf"):
        return "-"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:,.1f} h"


def _setup(micro_batch: int, seq_len: int, checkpointing: bool) -> str:
    return f"{micro_batch}x{seq_len}" + (" ckpt" if checkpointing else "")


def render_plan(report: PlanReport, console: Console) -> None:
    """The plan as `tunewise plan` prints it: memory, then fit, time and cost, then the recommendation."""
    req = report.request
    console.print(f"[bold]Model[/] {report.model_label}: {report.shape.describe()}")
    if report.shape.assumed:
        console.print(f"  [yellow]{report.shape.source}[/]")
    gpus = "" if report.device.is_cpu else f"{req.gpus} x "
    console.print(f"[bold]Hardware[/] {gpus}{report.device.name}, {report.device_memory_bytes / GIB:.1f} GiB each "
                  f"(catalog: {report.catalog_source})")
    data = report.dataset.source if report.dataset else f"[yellow]size not given: {NO_DATASET}[/]"
    console.print(f"[bold]Data[/] {data}; {req.epochs:g} epoch(s), {report.precision}")
    _render_memory(report, console)
    _render_fit(report, console)
    _render_recommendation(report, console)
    _render_extra_costs(report, console)
    console.print("[dim]Assumptions:[/]")
    for line in report.assumptions:
        console.print(f"  [dim]- {line}[/]", highlight=False)


def _render_memory(report: PlanReport, console: Console) -> None:
    from rich.table import Table

    memory = Table(title="Peak memory per device, GiB, and the parts alive at the peak", title_justify="left",
                   **_COMPACT)
    for col in ("mode", "setup", "peak", "lean", "weights", "grads", "optim", "activ", "models", "other"):
        memory.add_column(col, justify="left" if col in ("mode", "setup") else "right",
                          style="bold" if col == "peak" else None, no_wrap=True)
    for m in report.modes:
        b = m.memory.breakdown
        models = sum(b.get(k, 0) for k in ("reference_model", "reward_model", "value_model"))
        weights = b.get("weights", 0) + b.get("quantization_constants", 0)
        memory.add_row(m.mode, _setup(m.memory.setup.micro_batch, m.memory.setup.seq_len, m.gradient_checkpointing),
                       _gb(m.memory.peak_bytes), _gb(m.lean_memory.peak_bytes), _gb(weights),
                       _gb(b.get("gradients", 0)), _gb(b.get("optimizer_states", 0)), _gb(b.get("activations", 0)),
                       _gb(models), _gb(b.get("framework_overhead", 0)))
    console.print(memory)
    console.print(f"  [dim]setup: micro-batch x tokens per sequence, ckpt: gradient checkpointing; lean: the least "
                  f"the mode needs, at {_setup(1, report.request.seq_len, True)}; weights include 4-bit "
                  "quantization constants; models: reference, reward and value models; other: framework "
                  "overhead[/]")


def _render_fit(report: PlanReport, console: Console) -> None:
    from rich.table import Table

    plan = Table(title="Fit, time and cost", title_justify="left", **_COMPACT)
    for col in ("mode", "fits", "GPUs", "how", "tok/s", "epoch", "cost $", "placement"):
        plan.add_column(col, justify="right" if col in ("GPUs", "tok/s", "epoch", "cost $") else "left")
    for m in report.modes:
        fits = "[green]yes[/]" if m.fits else "[red]no[/]"
        if m.fits and not m.within_budget:
            fits = "[yellow]budget[/]"
        need = "-" if m.gpus_needed is None else str(m.gpus_needed)
        how = " ".join(x for x in (m.sharding if m.sharding != "none" else "",
                                   f"{m.policy} policy" if m.policy else "") if x)
        cost = "-" if m.cost_usd is None else f"{m.cost_usd:,.2f}"
        plan.add_row(m.mode, fits, f"{need}/{m.gpus_used}", how or "-", f"{m.tokens_per_s:,.0f}",
                     _hours(m.hours_per_epoch), cost, m.scheduling_short)
    console.print(plan)
    console.print("  [dim]GPUs: needed/used; how: sharding and the DPO/PPO policy (full or LoRA); cost: the whole "
                  "run at the mid price (JSON has the range)[/]")
    sources = {m.throughput_source for m in report.modes if m.throughput_source.startswith("measured")}
    for source in sorted(sources):
        console.print(f"  [cyan]throughput {source}[/]")


def _render_recommendation(report: PlanReport, console: Console) -> None:
    rec = report.recommendation
    if rec.mode is None:
        console.print("[bold red]Recommendation: none fits[/]")
    else:
        console.print(f"[bold green]Recommendation: {rec.mode}[/]")
    for reason in rec.reasons:
        console.print(f"  - {reason}", highlight=False)
    for warning in rec.warnings:
        console.print(f"  [yellow]! {warning}[/]", highlight=False)
    for alt in rec.alternatives:
        console.print(f"  [dim]~ {alt}[/]", highlight=False)


def _render_extra_costs(report: PlanReport, console: Console) -> None:
    extra = report.extra_costs
    console.print("[bold]Costs past the GPU bill[/]")
    serving = extra["serving"]
    console.print(f"  serving {serving['variants']} variant(s): {serving['full_copies_gb']:,.1f} GB as full copies, "
                  f"{serving['base_plus_adapters_gb']:,.1f} GB as one base + adapters", highlight=False)
    store = extra.get("checkpoint_storage")
    if store:
        console.print(f"  checkpoints: {store['checkpoints_kept']} x {store['gb_per_checkpoint']:,.2f} GB = "
                      f"{store['total_gb']:,.2f} GB, ${store['cost_usd']:,.2f} for {store['months']:g} month(s) at "
                      f"${store['usd_per_gb_month']}/GB-month", highlight=False)
    if "spot" in extra:  # absent without a dataset size: there is no run to price
        spot = extra["spot"]
        if spot:
            console.print(f"  spot/preemptible ({spot['discount']:.0%} off, resumes from checkpoints): "
                          f"${spot['cost_usd']:,.2f}", highlight=False)
        else:
            console.print("  spot/preemptible: not offered without checkpointing (a preemption would lose the run)")
    own = extra.get("cloud_vs_owned")
    if own:
        console.print(f"  rent or own one GPU: break-even at {own['break_even_hours_per_week']:g} GPU-hours a week "
                      f"(purchase ${own['purchase_usd']:,.0f} over {own['lifetime_years']:g} years, power "
                      f"${own['power_usd_per_hour']}/h); at {own['gpu_hours_per_week']:.1f} h/week "
                      f"{own['cheaper']} is cheaper (${own['cloud_usd_per_week']:,.2f} cloud vs "
                      f"${own['owned_usd_per_week']:,.2f} owned per week)", highlight=False)


def render_measurements(results: list[Measurement], console: Console, saved_to: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=f"Estimate against measurement on this machine ({results[0].device if results else ''})",
                  title_justify="left")
    for col in ("mode", "est. peak GiB", "measured GiB", "error", "est. tokens/s", "measured tokens/s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    table.add_column("note", overflow="fold")
    for r in results:
        err = "-" if r.relative_error is None else f"{r.relative_error:+.1%}"
        measured = "-" if r.measured_peak_bytes is None else f"{r.measured_peak_bytes / GIB:.3f}"
        tps = "-" if r.measured_tokens_per_s is None else f"{r.measured_tokens_per_s:,.1f}"
        table.add_row(r.mode, f"{r.estimated_peak_bytes / GIB:.3f}", measured, err,
                      f"{r.estimated_tokens_per_s:,.1f}" if r.estimated_tokens_per_s else "-", tps,
                      r.skipped or r.error or "")
    console.print(table)
    if saved_to:
        console.print(f"measured throughput saved to {saved_to}; later plans on this machine use it")


def render_diagnosis(diagnosis: Diagnosis, console: Console) -> None:
    from rich.table import Table

    table = Table(title="Answers scored against the references", title_justify="left")
    for col in ("condition", "questions", "accuracy", "exact match", "F1"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    labels = {"closed_book": "closed-book", "retrieved": "BM25 passages", "gold": "gold passage"}
    for name, s in diagnosis.scores.items():
        table.add_row(labels[name], str(s.questions), f"{s.accuracy:.0%}", f"{s.exact_match:.0%}", f"{s.f1:.2f}")
    console.print(table)
    console.print(f"retrieval: a reference answer is in the retrieved passages for {diagnosis.retrieval_recall:.0%} "
                  "of the questions")
    colour = {"rag": "green", "none": "green", "fine-tune": "yellow", "fine-tune+rag": "yellow"}[diagnosis.verdict]
    console.print(f"[bold {colour}]Verdict: {diagnosis.verdict}[/]")
    for reason in diagnosis.reasons:
        console.print(f"  - {reason}", highlight=False)
