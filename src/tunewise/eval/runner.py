"""The evaluation stage, top to bottom: held-out loss, generation metrics, judge, forgetting, spectrum.

`evaluate_run(run_dir, spec)` is what `tunewise eval` and the end of `tunewise train` call; the
gate (`run_gate`) and `write_results` follow it. Every metric is measured for the base model too.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunewise.eval.heldout import encode_record, loss_and_perplexity, prompt_and_reference, read_records
from tunewise.eval.report import EVAL_FILE, GATE_FILE, EvalReport, GateVerdict, Sample, write_json
from tunewise.eval.runs import read_spec_dict, resolve_run_dir, spec_value, update_status
from tunewise.eval.spec import EvalSpec, eval_spec_of


def evaluate_run(run_dir: str | Path, spec: Any = None) -> EvalReport:
    """Evaluate a finished run against its base model.

    run_dir: a run directory (or a run name under the workspace).
    spec: the run's JobSpec (its `eval` section is used), an EvalSpec, or None to read
      `<run>/spec.yaml`. Returns the report; nothing is written (see `write_results`).
    """
    run_dir = resolve_run_dir(run_dir)
    if spec is None:
        spec = read_spec_dict(run_dir)
    espec = eval_spec_of(spec)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    from tunewise.eval.pair import load_pair
    from tunewise.models.device import resolve_device_policy

    policy = resolve_device_policy(spec_value(spec, "train.device", "auto"), "auto")
    pair = load_pair(run_dir, policy)
    report = EvalReport(
        run=run_dir.name, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        base_model=pair.info.base_model, method=pair.info.method,
    )
    timings["load_s"] = time.perf_counter() - started

    records = _heldout_records(run_dir, espec, report)
    if records:
        _clock(timings, "heldout_loss_s", lambda: _heldout_loss(pair, records, espec, spec, report))
        _clock(timings, "generation_s", lambda: _generation(pair, records, espec, report, policy))
    if espec.forgetting.enabled:
        from tunewise.eval.forgetting import forgetting_check

        report.forgetting = _clock(timings, "forgetting_s",
                                   lambda: forgetting_check(pair, espec.forgetting, batch_size=espec.batch_size))
        report.warnings.extend(report.forgetting.notes)
    if espec.spectrum and pair.info.adapter:
        from tunewise.eval.spectrum import adapter_spectrum

        report.spectrum = adapter_spectrum(pair.info.path, method=pair.info.method)
        if report.spectrum:
            report.warnings.extend(report.spectrum.warnings)
    timings["total_s"] = time.perf_counter() - started
    report.timings_s = {k: round(v, 3) for k, v in timings.items()}
    return report


def _clock(timings: dict[str, float], key: str, fn: Any) -> Any:
    start = time.perf_counter()
    try:
        return fn()
    finally:
        timings[key] = time.perf_counter() - start


def _heldout_records(run_dir: Path, espec: EvalSpec, report: EvalReport) -> list[dict[str, Any]]:
    path = run_dir / "data" / "validation.jsonl"
    if not path.is_file():
        report.warnings.append(f"{path} is missing: held-out loss and generation metrics were skipped")
        return []
    records = read_records(path, espec.max_examples)
    report.n_examples = len(records)
    if not records:
        report.warnings.append(f"{path} is empty: held-out loss and generation metrics were skipped")
    return records


def _heldout_loss(pair: Any, records: list[dict[str, Any]], espec: EvalSpec, spec: Any, report: EvalReport) -> None:
    max_length = int(spec_value(spec, "data.max_length", 1024))
    encoded = [encode_record(pair.tokenizer, r, max_length) for r in records]
    loss, ppl = loss_and_perplexity(pair.tuned, pair.tokenizer, encoded, batch_size=espec.batch_size)
    report.metrics.update(val_loss=loss, perplexity=ppl)
    if espec.compare_base:
        with pair.base() as base:
            loss, ppl = loss_and_perplexity(base, pair.tokenizer, encoded, batch_size=espec.batch_size)
        report.base_metrics.update(val_loss=loss, perplexity=ppl)


def _generation(pair: Any, records: list[dict[str, Any]], espec: EvalSpec, report: EvalReport, policy: Any) -> None:
    from tunewise.eval.metrics import compute_metrics, load_json_schema
    from tunewise.models.generate import generate_replies

    if not espec.metrics and not espec.judge and espec.samples == 0:
        return  # nothing asks for generated answers
    pairs = [p for p in (prompt_and_reference(r) for r in records) if p is not None]
    if not pairs:
        report.warnings.append("no held-out record ends in an assistant turn: generation metrics were skipped")
        return
    conversations, references = [p[0] for p in pairs], [p[1] for p in pairs]

    def answers(model: Any) -> list[str]:
        return generate_replies(model, pair.tokenizer, conversations, max_new_tokens=espec.max_new_tokens,
                                batch_size=espec.batch_size)

    tuned = answers(pair.tuned)
    base: list[str] | None = None
    if espec.compare_base or espec.judge:
        with pair.base() as base_model:
            base = answers(base_model)
    schema = load_json_schema(espec.json_schema)
    options = {"labels": espec.labels, "json_schema": schema}
    report.metrics.update(compute_metrics(espec.metrics, tuned, references, **options))
    if espec.compare_base and base is not None:
        report.base_metrics.update(compute_metrics(espec.metrics, base, references, **options))
    report.samples = [
        Sample(prompt=_prompt_text(c), reference=ref, tuned=t, base=b)
        for c, ref, t, b in list(zip(conversations, references, tuned, base or [None] * len(tuned)))[: espec.samples]
    ]
    if espec.judge and base is not None:
        from tunewise.eval.judge import items_from, judge_win_rate, make_judge

        limit = espec.judge.max_examples or espec.max_examples
        judge = make_judge(espec.judge, policy)
        report.judge = judge_win_rate(items_from(conversations, tuned, base)[:limit], judge, seed=espec.seed)


def _prompt_text(conversation: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)


def write_results(run_dir: str | Path, report: EvalReport, verdict: GateVerdict) -> Path:
    """Store `<run>/eval.json` and `<run>/gate.json`; a failed gate marks the run failed (reason "gate").

    A later passing evaluation of a run that had failed only its gate marks it completed again.
    """
    run_dir = resolve_run_dir(run_dir)
    write_json(run_dir / EVAL_FILE, report.to_json())
    write_json(run_dir / GATE_FILE, verdict.model_dump(mode="json"))
    if not verdict.passed:
        update_status(run_dir, state="failed", reason="gate", error=f"evaluation gate {verdict.summary()}")
    else:
        from tunewise.eval.runs import read_status

        if read_status(run_dir).get("reason") == "gate":
            update_status(run_dir, state="completed", reason=None, error=None)
    return run_dir


def evaluate_and_gate(run_dir: str | Path, spec: Any = None) -> tuple[EvalReport, GateVerdict]:
    """evaluate_run + run_gate + write_results, as `tunewise eval` does (other libraries' output to `<run>/run.log`)."""
    from tunewise.eval.gate import run_gate
    from tunewise.logs import routed, run_log_path

    run_dir = resolve_run_dir(run_dir)
    if spec is None:
        spec = read_spec_dict(run_dir)
    with routed(run_log_path(run_dir)):
        report = evaluate_run(run_dir, spec)
        verdict = run_gate(report, eval_spec_of(spec))
        write_results(run_dir, report, verdict)
    return report, verdict
