"""The data report: what was read, kept, dropped and why. `to_dict()` is its JSON twin."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tunewise.data.problems import RowError

SUMMARY_PROBLEMS = 20  # problems quoted in a DataError message
HISTOGRAM_BINS = 20  # bins of the token-length histogram in to_dict()


@dataclass
class DataReport:
    """Everything validation found in one dataset (plus split/mix counts after prepare_data).

    rows_read counts every row seen, valid or not; each row not kept appears in exactly one of
    errors (row-level), dropped, exact_duplicates, near_duplicates, so
    rows_read == rows_kept + row errors + len(dropped) + duplicates.
    """

    file: str
    format: str | None = None
    format_detected: bool | None = None  # None when no format was settled
    preference_kind: str | None = None  # "paired" | "unpaired" for format preference
    variants: dict[str, int] = field(default_factory=dict)  # variant name -> rows read as it
    sources: dict[str, str] = field(default_factory=dict)  # variant name -> who writes that shape
    field_mapping: dict[str, str] = field(default_factory=dict)  # source field seen -> what it became (or why dropped)
    unused_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {"rows", "first_line"}
    tool_rendering: str | None = None  # how tools reach the model: its chat template, or tunewise's text
    rows_read: int = 0
    rows_kept: int = 0
    errors: list[RowError] = field(default_factory=list)
    dropped: list[RowError] = field(default_factory=list)
    exact_duplicates: list[dict[str, Any]] = field(default_factory=list)  # {"line", "duplicate_of"}
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)  # {"line", "duplicate_of", "similarity"}
    max_length: int | None = None
    too_long: int = 0
    too_long_action: str | None = None
    token_lengths: list[int] = field(default_factory=list, repr=False)
    masking: str | None = None
    train_rows: int | None = None
    validation_rows: int | None = None
    validation_source: str | None = None  # "split" or the validation file
    mixed_rows: int | None = None
    mix_file: str | None = None
    extra_files: dict[str, dict[str, Any]] = field(default_factory=dict)  # summaries of validation/mix files
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def variant(self) -> str | None:
        """The variant most rows were read as (the first seen among equals)."""
        return max(self.variants, key=self.variants.__getitem__) if self.variants else None

    @property
    def format_label(self) -> str | None:
        """"format (variant)", e.g. "preference (openai)", "chat (tools)"; the name alone when they agree."""
        if self.format is None or self.variant in (None, self.format):
            return self.format
        return f"{self.format} ({self.variant})"

    def note_row(self, variant: Any, used: set[str], unused: list[str], line: int | None) -> None:
        """Count a row read as `variant` (a formats.Variant): the fields it held and those it did not read."""
        self.variants[variant.name] = self.variants.get(variant.name, 0) + 1
        self.sources.setdefault(variant.name, variant.source)
        if not used.issubset(self.field_mapping):  # most rows add nothing new: skip the ordered walk
            for path in (p for p in (*variant.fields, *variant.dropped) if p in used):  # in the variant's order
                if path not in self.field_mapping:
                    dropped = variant.dropped.get(path)
                    self.field_mapping[path] = f"dropped: {dropped}" if dropped else variant.fields.get(path, "")
        if unused:
            self.note_unused(unused, line)

    def note_unused(self, paths: list[str], line: int | None) -> None:
        for path in paths:
            seen = self.unused_fields.setdefault(path, {"rows": 0, "first_line": line})
            seen["rows"] += 1

    def token_stats(self) -> dict[str, float] | None:
        """min/mean/p50/p95/max/total of example lengths in tokens (before truncation)."""
        if not self.token_lengths:
            return None
        ordered = sorted(self.token_lengths)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]  # noqa: E731
        return {
            "min": ordered[0],
            "mean": round(statistics.fmean(ordered), 1),
            "p50": pick(0.5),
            "p95": pick(0.95),
            "max": ordered[-1],
            "total": sum(ordered),
        }

    def token_histogram(self, bins: int = HISTOGRAM_BINS) -> dict[str, list[int]] | None:
        """Example lengths in tokens counted in `bins` equal-width bins: `edges` has bins + 1 bounds."""
        if not self.token_lengths:
            return None
        low, high = min(self.token_lengths), max(self.token_lengths)
        width = max(1, -(-(high - low + 1) // bins))  # ceil: every length falls in a bin
        counts = [0] * bins
        for length in self.token_lengths:
            counts[min(bins - 1, (length - low) // width)] += 1
        used = max(i for i, c in enumerate(counts) if c) + 1  # no empty bins past the longest example
        return {"edges": [low + i * width for i in range(used + 1)], "counts": counts[:used]}

    def summary(self, limit: int = SUMMARY_PROBLEMS) -> str:
        """The first `limit` errors, one per line, for exception messages."""
        lines = [str(problem) for problem in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "format_detected": self.format_detected,
            "variant": self.variant,
            "variants": dict(self.variants),
            "sources": dict(self.sources),
            "preference_kind": self.preference_kind,
            "field_mapping": dict(self.field_mapping),
            "unused_fields": {k: dict(v) for k, v in self.unused_fields.items()},
            "tool_rendering": self.tool_rendering,
            "ok": self.ok,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "errors": [p.to_dict() for p in self.errors],
            "dropped": [p.to_dict() for p in self.dropped],
            "exact_duplicates": list(self.exact_duplicates),
            "near_duplicates": list(self.near_duplicates),
            "too_long": {"count": self.too_long, "max_length": self.max_length, "action": self.too_long_action},
            "token_stats": self.token_stats(),
            "token_histogram": self.token_histogram(),
            "masking": self.masking,
            "split": {
                "train": self.train_rows,
                "validation": self.validation_rows,
                "validation_source": self.validation_source,
                "mixed": self.mixed_rows,
                "mix_file": self.mix_file,
            },
            "extra_files": self.extra_files,
            "warnings": list(self.warnings),
        }
