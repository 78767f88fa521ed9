"""Read one data file end to end: load, detect, normalize, deduplicate, tokenize, check lengths.

Both entry points make one streaming pass over the rows: each row is normalized, checked against
the exact and near duplicates seen so far, then measured in tokens, before the next ones are read.
`read_dataset` keeps the surviving records (training needs them) with a `DataReport`;
`validate_file` keeps none, only what deduplication must remember per row and the report.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.data.chat_view import text_view, tool_rendering, uses_tools
from tunewise.data.dedup import ExactDeduplicator, near_duplicates
from tunewise.data.fields import refuse_meaningful, scan_fields
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
    problem must stop training (with on_invalid="fail", every invalid row is one). No record is
    kept: memory grows per row only by what deduplication remembers (a 16-byte digest, a MinHash
    signature and its LSH entry) and, with a tokenizer, the token length behind the statistics.
    """
    out = LoadedData(report=DataReport(file=str(path), max_length=max_length))
    _read(out, path, keep=False, format=format, tokenizer=tokenizer, tokenize=False, max_length=max_length,
          on_too_long=on_too_long, dedup=dedup, near_dup_threshold=near_dup_threshold, on_invalid=on_invalid,
          max_line_bytes=MAX_LINE_BYTES)
    return out.report


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
    out = LoadedData(report=DataReport(file=str(path), max_length=max_length))
    _read(out, path, keep=True, format=format, tokenizer=tokenizer, tokenize=tokenize, max_length=max_length,
          on_too_long=on_too_long, dedup=dedup, near_dup_threshold=near_dup_threshold, on_invalid=on_invalid,
          max_line_bytes=max_line_bytes)
    return out


def _read(out: LoadedData, path: str | Path, *, keep: bool, format: str | None, tokenizer: Any, tokenize: bool,
          max_length: int | None, on_too_long: str, dedup: bool, near_dup_threshold: float, on_invalid: str,
          max_line_bytes: int) -> None:
    """One pass over the rows: fill `out.report`, and `out`'s records, lines and examples if `keep`."""
    report = out.report
    rows = load_rows(path, max_line_bytes=max_line_bytes)
    head = _head(rows)
    fmt = _choose_format(format, head, report)
    if fmt is None:
        _count_rows(itertools.chain(head, rows), report, on_invalid)
    else:
        out.kind = fmt.kind
        records = _unique_records(itertools.chain(head, rows), fmt, report, on_invalid, dedup)
        if dedup:
            records = _drop_near_duplicates(records, report, near_dup_threshold)
        meter = None if tokenizer is None else _TokenMeter(tokenizer, fmt.kind, report, max_length=max_length,
                                                            on_too_long=on_too_long, on_invalid=on_invalid)
        examples: list[Any] = []  # one per kept record: None when not tokenized
        for record, line in records:
            example = None
            if meter is not None:
                wanted, example = meter.measure(record, line)
                if not wanted:
                    continue
            report.rows_kept += 1
            if keep:
                out.records.append(record)
                out.lines.append(line)
                examples.append(example)
        if meter is not None:
            meter.finish()
            if keep and tokenize and meter.active and fmt.kind not in _UNTOKENIZED:
                out.examples = examples  # every record of these kinds was tokenized
    if report.rows_kept == 0 and not any(p.fatal for p in report.errors):
        report.errors.append(RowError(report.file, None, None, _nothing_left(report), fatal=True))


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


def _unique_records(rows: Iterator[Row], fmt: RowFormat, report: DataReport, on_invalid: str,
                    dedup: bool) -> Iterator[tuple[dict[str, Any], int | None]]:
    """(record, line) for each valid row in file order, less exact duplicates when `dedup`."""
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
        yield record, line


def _drop_near_duplicates(records: Iterator[tuple[dict[str, Any], int | None]], report: DataReport,
                          threshold: float) -> Iterator[tuple[dict[str, Any], int | None]]:
    for record, line, duplicate in near_duplicates(records, threshold):
        if duplicate is None:
            yield record, line
        else:
            report.near_duplicates.append({"line": line, "duplicate_of": duplicate.of_line,
                                           "similarity": duplicate.similarity})


def _normalize_one(fmt: RowFormat, row: dict, line: int | None, report: DataReport, on_invalid: str) -> dict | None:
    """The row's record, its variant and unused fields noted in the report; None (and the problem
    reported) when the row is invalid or holds a field its variant would silently ignore."""
    try:
        variant = fmt.variant_of(row)
        used, unused = scan_fields(row, variant)
        report.note_row(variant, used, list(unused), line)
        refuse_meaningful(unused, fmt, variant)
        record = variant.normalize(row)
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


class _TokenMeter:
    """Token length of each surviving record, for the report; drops or truncates the long ones.

    Starts on the first record (a file with none gets no masking or too-long action). Its problems
    are held back until `finish`, so the report lists them after every reading problem, in the
    order a read-everything-then-measure pass gives.
    """

    def __init__(self, tokenizer: Any, kind: str, report: DataReport, *, max_length: int | None,
                 on_too_long: str, on_invalid: str):
        self.tokenizer, self.kind, self.report = tokenizer, kind, report
        self.max_length, self.on_too_long, self.on_invalid = max_length, on_too_long, on_invalid
        self.active: bool | None = None  # None before the first record; False: the tokenizer cannot format it
        self._held = DataReport(file=report.file)  # problems, until finish()

    def measure(self, record: dict[str, Any], line: int | None) -> tuple[bool, dict[str, list[int]] | None]:
        """(keep the record?, its example: None for preference and prompt records, or when not active)."""
        if self.active is None:
            self.active = self._start()
        if not self.active:
            return True, None
        if self.report.tool_rendering is None and _uses_tools(record):
            self._note_tool_rendering()
        file = self.report.file
        try:
            example = None if self.kind in _UNTOKENIZED else tokenize_record(self.tokenizer, record)
            length = _aligned_length(self.tokenizer, record) if example is None else len(example["input_ids"])
        except DataError as err:
            _add_problem(self._held, RowError(file, line, "messages", err.message), self.on_invalid)
            return False, None
        self.report.token_lengths.append(length)
        if not self.max_length or length <= self.max_length:
            return True, example
        self.report.too_long += 1
        reason = f"{length} tokens, over max_length={self.max_length}"
        if self.on_too_long == "drop":
            self._held.dropped.append(RowError(file, line, "(length)", f"{reason}; dropped"))
            return False, None
        if example is not None:
            example = truncate_example(example, self.max_length)
            if example is None:
                reason += "; truncation leaves no answer tokens"
                self._held.dropped.append(RowError(file, line, "(length)", reason))
                return False, None
        return True, example

    def _note_tool_rendering(self) -> None:
        self.report.tool_rendering = tool_rendering(self.tokenizer)
        if not self.report.tool_rendering.startswith("chat template"):
            self.report.warnings.append(
                "tools, tool calls and tool results are rendered as tunewise text (<tools>, <tool_call>, "
                "<tool_response> tags): this model's chat template does not render tools (docs/data.md)")

    def finish(self) -> None:
        self.report.errors.extend(self._held.errors)
        self.report.dropped.extend(self._held.dropped)

    def _start(self) -> bool:
        if self.kind == "conversation":
            if not getattr(self.tokenizer, "chat_template", None):
                reason = ("the tokenizer has no chat template; "
                          "conversations cannot be formatted (use a chat model or format text)")
                self._held.errors.append(RowError(self.report.file, None, None, reason, fatal=True))
                return False
            self.report.masking = masking_mode(self.tokenizer)
        self.report.too_long_action = self.on_too_long if self.max_length else None
        return True


# Records the aligning trainers tokenize themselves; the pipeline measures them only.
_UNTOKENIZED = ("preference", "prompt")


def _aligned_length(tokenizer: Any, record: dict[str, Any]) -> int:
    """Prompt tokens plus the longer answer plus eos: the longest sequence the trainer will build
    (for a prompt alone, its tokens: the answer is sampled within its own limit). Tool calls in
    answers are counted in tunewise's text form."""
    prompt = len(render_prompt(tokenizer, record["prompt"], tokenize=True, tools=record.get("tools")))
    answers = [text_view(record[k], None) for k in ("chosen", "rejected", "completion") if k in record]
    if not answers:
        return prompt
    longest = max(len(tokenizer("".join(m["content"] for m in a), add_special_tokens=False)["input_ids"]) for a in answers)
    return prompt + longest + 1


def _uses_tools(record: dict[str, Any]) -> bool:
    messages = [m for key in ("messages", "prompt", "chosen", "rejected", "completion") for m in record.get(key) or []]
    return uses_tools(messages, record.get("tools"))


def _nothing_left(report: DataReport) -> str:
    if report.rows_read == 0:
        return "file is empty (no rows)"
    removed = report.rows_read
    return f"no usable rows: all {removed} rows were invalid, duplicates or too long"
