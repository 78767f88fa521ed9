"""Read one data file end to end: load, detect, normalize, deduplicate, tokenize, check lengths.

`read_dataset` streams the rows (only normalized records are kept in memory) and returns them
with a `DataReport`; `validate_file` is the same pass for its report alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.data.dedup import ExactDeduplicator, find_near_duplicates
from tunewise.data.formats import DETECT_SAMPLE_ROWS, RowFormat, detect_format, get_format
from tunewise.data.formats.preference import record_kind
from tunewise.data.problems import FieldError, RowError
from tunewise.data.readers import MAX_LINE_BYTES, Row, load_rows
from tunewise.data.report import DataReport
from tunewise.data.templating import masking_mode, render_prompt, tokenize_record, truncate_example
from tunewise.errors import DataError


@dataclass
class LoadedData:
    """Kept records in file order, their line numbers, and (when tokenized) their examples."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)
    examples: list[dict[str, list[int]]] | None = None
    kind: str | None = None  # "conversation" | "text" | "preference" | "prompt"
    report: DataReport = field(default_factory=lambda: DataReport(file=""))


def validate_file(
    path: str | Path,
    *,
    format: str | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    on_too_long: Literal["drop", "truncate"] = "drop",
    dedup: bool = True,
    near_dup_threshold: float = 0.9,
    on_invalid: Literal["fail", "drop"] = "fail",
) -> DataReport:
    """Check a data file without training; see `read_dataset` for the arguments.

    Token statistics and the too-long count need a tokenizer. `report.ok` is False when any
    problem must stop training (with on_invalid="fail", every invalid row is one).
    """
    return read_dataset(
        path, format=format, tokenizer=tokenizer, max_length=max_length, on_too_long=on_too_long,
        dedup=dedup, near_dup_threshold=near_dup_threshold, on_invalid=on_invalid,
    ).report


def read_dataset(
    path: str | Path,
    *,
    format: str | None = None,
    tokenizer: Any = None,
    tokenize: bool = False,
    max_length: int | None = None,
    on_too_long: Literal["drop", "truncate"] = "drop",
    dedup: bool = True,
    near_dup_threshold: float = 0.9,
    on_invalid: Literal["fail", "drop"] = "fail",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> LoadedData:
    """Read, normalize and check one data file.

    Args:
        path: .jsonl, .json, .csv or .parquet file.
        format: force a format; None detects it from the first rows' keys.
        tokenizer: enables token statistics and the max_length check.
        tokenize: keep the tokenized examples (conversation and text formats only; the aligning
            trainers tokenize preference and prompt rows themselves).
        max_length: longest example in tokens; longer ones are handled per on_too_long.
        on_too_long: "drop" the example, or "truncate" it from the end (preference, prompt: left to the trainer).
        dedup: remove exact duplicates and near duplicates (MinHash Jaccard >= near_dup_threshold).
        on_invalid: "fail" lists invalid rows as errors; "drop" skips them and lists them as dropped.
    Raises DataError only for an unknown format name; every data problem lands in the report.
    """
    label = str(path)
    out = LoadedData(report=DataReport(file=label, max_length=max_length))
    report = out.report
    rows = load_rows(path, max_line_bytes=max_line_bytes)
    head = _head(rows)
    fmt = _choose_format(format, head, report)
    if fmt is None:
        _count_rows(itertools.chain(head, rows), report, on_invalid)
    else:
        out.kind = fmt.kind
        _normalize_rows(itertools.chain(head, rows), fmt, out, on_invalid, dedup)
        if dedup:
            _remove_near_duplicates(out, near_dup_threshold)
        if tokenizer is not None and out.records:
            _measure_tokens(out, tokenizer, tokenize=tokenize, max_length=max_length, on_too_long=on_too_long,
                            on_invalid=on_invalid)
    report.rows_kept = len(out.records)
    if not out.records and not any(p.fatal for p in report.errors):
        report.errors.append(RowError(label, None, None, _nothing_left(report), fatal=True))
    return out


def _head(rows: Iterator[Row]) -> list[Row]:
    """Rows up to the DETECT_SAMPLE_ROWS-th object (or a fatal error): enough to detect the format."""
    head: list[Row] = []
    objects = 0
    for item in rows:
        head.append(item)
        objects += isinstance(item[1], dict)
        if objects >= DETECT_SAMPLE_ROWS or (isinstance(item[1], RowError) and item[1].fatal):
            break
    return head


def _choose_format(name: str | None, head: list[Row], report: DataReport) -> RowFormat | None:
    if name is not None:
        report.format, report.format_detected = name, False
        return get_format(name)
    if not any(isinstance(row, dict) for _, row in head):
        return None  # the file's own errors say why; nothing to detect from
    try:
        report.format = detect_format(head)
        report.format_detected = True
    except DataError as err:
        report.errors.append(RowError(report.file, None, None, err.message, fatal=True))
        return None
    return get_format(report.format)


def _count_rows(rows: Iterator[Row], report: DataReport, on_invalid: str) -> None:
    for line, row in rows:
        if isinstance(row, RowError):
            _add_problem(report, row, on_invalid)
        if line is not None:
            report.rows_read += 1


def _add_problem(report: DataReport, problem: RowError, on_invalid: str) -> None:
    (report.dropped if on_invalid == "drop" and not problem.fatal else report.errors).append(problem)


def _normalize_rows(rows: Iterator[Row], fmt: RowFormat, out: LoadedData, on_invalid: str, dedup: bool) -> None:
    report = out.report
    exact = ExactDeduplicator() if dedup else None
    for line, row in rows:
        if line is not None:
            report.rows_read += 1
        if isinstance(row, RowError):
            _add_problem(report, row, on_invalid)
            continue
        record = _normalize_one(fmt, row, line, report, on_invalid)
        if record is None:
            continue
        if exact is not None:
            duplicate = exact.check(record, line)
            if duplicate is not None:
                report.exact_duplicates.append({"line": line, "duplicate_of": duplicate.of_line})
                continue
        out.records.append(record)
        out.lines.append(line)


def _remove_near_duplicates(out: LoadedData, threshold: float) -> None:
    found = find_near_duplicates(out.records, out.lines, threshold)
    if not found:
        return
    for index in sorted(found):
        duplicate = found[index]
        out.report.near_duplicates.append(
            {"line": out.lines[index], "duplicate_of": duplicate.of_line, "similarity": duplicate.similarity}
        )
    out.records = [r for i, r in enumerate(out.records) if i not in found]
    out.lines = [n for i, n in enumerate(out.lines) if i not in found]


def _normalize_one(fmt: RowFormat, row: dict, line: int | None, report: DataReport, on_invalid: str) -> dict | None:
    try:
        record = fmt.normalize(row)
    except FieldError as err:
        _add_problem(report, RowError(report.file, line, err.field, err.reason), on_invalid)
        return None
    except Exception as err:  # a normalizer bug must still name the row, not print a traceback
        _add_problem(report, RowError(report.file, line, None, f"unreadable row ({type(err).__name__}: {err})"), on_invalid)
        return None
    if fmt.kind == "preference":
        kind = record_kind(record)
        if report.preference_kind is None:
            report.preference_kind = kind
        elif kind != report.preference_kind:
            field_name = "label" if kind == "unpaired" else "chosen"
            reason = f"mixes {kind} rows into a file of {report.preference_kind} rows (prompt/chosen/rejected vs prompt/completion/label)"
            _add_problem(report, RowError(report.file, line, field_name, reason), on_invalid)
            return None
    return record


def _measure_tokens(out: LoadedData, tokenizer: Any, *, tokenize: bool, max_length: int | None,
                    on_too_long: str, on_invalid: str) -> None:
    """Token lengths for the report; drop or truncate long examples; keep examples if `tokenize`."""
    report = out.report
    if out.kind == "conversation":
        if not getattr(tokenizer, "chat_template", None):
            report.errors.append(RowError(report.file, None, None, "the tokenizer has no chat template; "
                                          "conversations cannot be formatted (use a chat model or format text)", fatal=True))
            return
        report.masking = masking_mode(tokenizer)
    report.too_long_action = on_too_long if max_length else None
    records, lines, examples = [], [], []
    for record, line in zip(out.records, out.lines):
        try:
            example = None if out.kind in _UNTOKENIZED else tokenize_record(tokenizer, record)
            length = _aligned_length(tokenizer, record) if example is None else len(example["input_ids"])
        except DataError as err:
            _add_problem(report, RowError(report.file, line, "messages", err.message), on_invalid)
            continue
        report.token_lengths.append(length)
        if max_length and length > max_length:
            report.too_long += 1
            reason = f"{length} tokens, over max_length={max_length}"
            if on_too_long == "drop":
                report.dropped.append(RowError(report.file, line, "(length)", f"{reason}; dropped"))
                continue
            if example is not None:
                example = truncate_example(example, max_length)
                if example is None:
                    report.dropped.append(RowError(report.file, line, "(length)", f"{reason}; truncation leaves no answer tokens"))
                    continue
        records.append(record)
        lines.append(line)
        examples.append(example)
    out.records, out.lines = records, lines
    out.examples = examples if tokenize and out.kind not in _UNTOKENIZED else None


# Records the aligning trainers tokenize themselves; the pipeline measures them only.
_UNTOKENIZED = ("preference", "prompt")


def _aligned_length(tokenizer: Any, record: dict[str, Any]) -> int:
    """Prompt tokens plus the longer answer plus eos: the longest sequence the trainer will build
    (for a prompt alone, its tokens: the answer is sampled within its own limit)."""
    prompt = len(render_prompt(tokenizer, record["prompt"], tokenize=True))
    answers = [record[k] for k in ("chosen", "rejected", "completion") if k in record]
    if not answers:
        return prompt
    longest = max(len(tokenizer("".join(m["content"] for m in a), add_special_tokens=False)["input_ids"]) for a in answers)
    return prompt + longest + 1


def _nothing_left(report: DataReport) -> str:
    if report.rows_read == 0:
        return "file is empty (no rows)"
    removed = report.rows_read
    return f"no usable rows: all {removed} rows were invalid, duplicates or too long"
