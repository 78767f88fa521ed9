"""From a DataSpec to train/validation sets: read, split or read validation, mix, tokenize."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from tunewise.data.dedup import record_digest
from tunewise.data.pipeline import LoadedData, read_dataset
from tunewise.data.report import DataReport
from tunewise.errors import DataError

_SFT_KINDS = {"conversation", "text"}


@dataclass
class PreparedData:
    """train/validation: tokenized examples ({"input_ids", "labels"}), or normalized records when
    prepared with tokenize=False or for preference and prompt data. kind: conversation, text,
    preference or prompt."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    format: str
    kind: str
    report: DataReport
    train_lines: list[int | None] = field(default_factory=list, repr=False)  # None for mixed-in rows
    validation_records: list[dict[str, Any]] = field(default_factory=list, repr=False)  # normalized, for data/validation.jsonl


def prepare_data(spec: Any, tokenizer: Any, *, seed: int, tokenize: bool = True) -> PreparedData:
    """Build the training and validation sets described by a `tunewise.spec.DataSpec`.

    Args:
        spec: the DataSpec (train, validation, format, val_fraction, max_length, on_too_long,
            on_invalid, dedup, near_dup_threshold, mix).
        tokenizer: the base model's tokenizer (None only with tokenize=False).
        seed: seeds the held-out split and the draw of mixed rows.
        tokenize: return tokenized examples (ignored for preference and prompt data, returned as records).
    Raises DataError (first problems listed as file:line field: reason, report attached as
    `.report`) when any file has errors, or when no training rows are left.
    """
    if tokenize and tokenizer is None:
        raise ValueError("prepare_data needs a tokenizer unless tokenize=False")
    options = dict(tokenizer=tokenizer, max_length=spec.max_length if tokenizer is not None else None,
                   on_too_long=spec.on_too_long, dedup=spec.dedup, near_dup_threshold=spec.near_dup_threshold,
                   on_invalid=spec.on_invalid)
    main = read_dataset(spec.train, format=spec.format, tokenize=tokenize, **options)
    report = main.report
    _raise_on_errors(report, spec)
    items = _items(main)
    if spec.validation:
        other = read_dataset(spec.validation, format=spec.format, tokenize=tokenize, **options)
        _merge(report, "validation", other)
        _raise_on_errors(report, spec)
        _check_kind(main, other, "validation")
        validation, validation_records = _drop_overlap(other, set(map(record_digest, main.records)), report, "validation")
        train, train_lines = items, list(main.lines)
        report.validation_source = str(spec.validation)
    else:
        train_idx, val_idx = split_indices(main.records, spec.val_fraction, seed)
        train, validation = [items[i] for i in train_idx], [items[i] for i in val_idx]
        train_lines = [main.lines[i] for i in train_idx]
        validation_records = [main.records[i] for i in val_idx]
        report.validation_source = "split"
    if spec.mix is not None:
        mixed = _draw_mix(spec, tokenize, options, main, len(train), seed, report)
        train = train + mixed
        train_lines = train_lines + [None] * len(mixed)
    report.train_rows, report.validation_rows = len(train), len(validation)
    if not train:
        raise _data_error(report, f"{spec.train}: no training rows left after validation and the split")
    return PreparedData(train, validation, report.format or "", main.kind or "", report, train_lines, validation_records)


def split_indices(records: list[dict[str, Any]], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic held-out split: rows ranked by a seeded hash of their content.

    The validation set is the round(n * val_fraction) lowest-ranked rows (at least 1 when
    val_fraction > 0 and n >= 2, never all of them). A row's rank depends only on its content and the
    seed, so adding rows to a file moves few existing rows between the sets. Both lists keep file order.
    """
    n = len(records)
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    salt = str(seed).encode()
    ranked = sorted(range(n), key=lambda i: (hashlib.blake2b(salt + record_digest(records[i]), digest_size=8).digest(), i))
    val = set(ranked[:n_val])
    return [i for i in range(n) if i not in val], sorted(val)


def _items(data: LoadedData) -> list[dict[str, Any]]:
    return data.examples if data.examples is not None else data.records


def _draw_mix(spec: Any, tokenize: bool, options: dict, main: LoadedData, n_train: int, seed: int,
              report: DataReport) -> list[dict[str, Any]]:
    """Rows of the general dataset making up `fraction` of the final training set."""
    fraction = spec.mix.fraction
    general = read_dataset(spec.mix.path, format=None, tokenize=tokenize, **options)
    _merge(report, "mix", general)
    _raise_on_errors(report, spec)
    _check_kind(main, general, "mix")
    pool, _ = _drop_overlap(general, set(map(record_digest, main.records)), report, "mix")
    wanted = round(fraction * n_train / (1 - fraction))
    if wanted > len(pool):
        report.warnings.append(
            f"mix: wanted {wanted} rows ({fraction:.0%} of training) but {spec.mix.path} has {len(pool)} usable; using all"
        )
        wanted = len(pool)
    chosen = sorted(random.Random(seed).sample(range(len(pool)), wanted))
    report.mixed_rows, report.mix_file = wanted, str(spec.mix.path)
    return [pool[i] for i in chosen]


def _drop_overlap(other: LoadedData, train_digests: set[bytes], report: DataReport,
                  role: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items and records of `other` minus exact copies of training rows (a validation row seen in
    training proves nothing)."""
    kept, kept_records, overlap = [], [], []
    for item, record, line in zip(_items(other), other.records, other.lines):
        if record_digest(record) in train_digests:
            overlap.append(line)
        else:
            kept.append(item)
            kept_records.append(record)
    if overlap:
        report.extra_files[role]["overlap_with_train"] = overlap
        report.warnings.append(f"{role}: removed {len(overlap)} rows that are exact copies of training rows")
    return kept, kept_records


def _check_kind(main: LoadedData, other: LoadedData, role: str) -> None:
    compatible = main.kind == other.kind or {main.kind, other.kind} <= _SFT_KINDS
    if not compatible:
        raise DataError(
            f"{other.report.file}: {role} data is format {other.report.format} ({other.kind}) but training data is "
            f"{main.report.format} ({main.kind}); they cannot be combined"
        )


def _merge(report: DataReport, role: str, other: LoadedData) -> None:
    sub = other.report
    report.errors.extend(sub.errors)
    report.dropped.extend(sub.dropped)
    report.warnings.extend(f"{role}: {w}" for w in sub.warnings)
    report.extra_files[role] = {
        "file": sub.file, "format": sub.format, "rows_read": sub.rows_read, "rows_kept": sub.rows_kept,
        "exact_duplicates": len(sub.exact_duplicates), "near_duplicates": len(sub.near_duplicates),
        "too_long": sub.too_long, "dropped": len(sub.dropped), "errors": len(sub.errors),
    }


def _raise_on_errors(report: DataReport, spec: Any) -> None:
    if report.errors:
        fatal_only = all(p.fatal for p in report.errors)
        hint = None if fatal_only or spec.on_invalid == "drop" else (
            "fix these rows, or set data.on_invalid=drop to skip invalid rows (each stays listed in the report)")
        raise _data_error(report, f"{len(report.errors)} problem(s) in the data:\n{report.summary()}", hint)


def _data_error(report: DataReport, message: str, hint: str | None = None) -> DataError:
    err = DataError(message, hint=hint)
    err.report = report  # callers (CLI, API) can show the full report
    return err
