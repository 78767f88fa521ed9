"""Problems found in a data file, each pinned to file:line and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RowError:
    """One problem with one row (or with the whole file when `line` is None).

    `line` is the 1-based line number for JSONL, CSV and JSON files (the line where the row
    starts) and the 1-based row number for Parquet. `field` is a dotted path such as
    `messages[2].role`, or None when the problem is the row itself (bad JSON, not an object).
    `fatal` problems make the file unusable whatever `on_invalid` says (unreadable, empty, not a list).
    """

    file: str
    line: int | None
    field: str | None
    reason: str
    fatal: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.where}:{field} {self.reason}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


class FieldError(ValueError):
    """Raised by a format's normalizer: `field` is the dotted path of the offending value."""

    def __init__(self, field: str | None, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)
