"""Read rows from JSONL, JSON, CSV and Parquet files, one at a time, each with its line number.

Nothing here raises on bad input: every problem comes back as a `RowError` in place of the row,
so a caller can list all of them. JSONL and CSV are read line by line with a cap on line length
(a 2 GB line must not take 2 GB of memory); JSON files are parsed element by element so each row
still gets the line it starts on.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from json.decoder import scanstring
from pathlib import Path
from typing import Any

from tunewise.data.problems import RowError

MAX_LINE_BYTES = 10 * 1024 * 1024  # one JSONL/CSV line; longer lines are reported, not read
MAX_JSON_FILE_BYTES = 1024 * 1024 * 1024  # a .json file is parsed whole; use JSONL beyond this
_SNIFF_BYTES = 8192
_BOM = b"\xef\xbb\xbf"
_WS = re.compile(r"[ \t\n\r]*")

Row = tuple[int | None, "dict[str, Any] | RowError"]
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def load_rows(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Row]:
    """Yield `(line_no, row)` for every row of a data file; `row` is a dict or a `RowError`.

    Args:
        path: a .jsonl/.ndjson, .json (list of objects or {"data": [...]}), .csv or .parquet file.
        max_line_bytes: longest line read from JSONL/CSV; longer lines become errors.

    Line numbers are 1-based (row numbers for Parquet). File-level problems (missing, empty,
    binary, not a list) come as one fatal RowError whose line may be None.
    """
    file = Path(path)
    label = str(path)
    if not file.exists():
        yield None, RowError(label, None, None, "file not found", fatal=True)
        return
    if not file.is_file():
        yield None, RowError(label, None, None, "not a regular file", fatal=True)
        return
    kind = SUFFIXES.get(file.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(SUFFIXES))
        yield None, RowError(label, None, None, f"unsupported file type {file.suffix or '(none)'!r}; use {known}", fatal=True)
        return
    if kind == "parquet":
        reader = _read_parquet(file, label)
    else:
        with open(file, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        if not head.strip():
            yield None, RowError(label, None, None, "file is empty (no rows)", fatal=True)
            return
        if b"\x00" in head:
            reason = "contains NUL bytes: a binary file, or text not in UTF-8 (e.g. UTF-16)"
            yield None, RowError(label, None, None, reason, fatal=True)
            return
        if kind == "json" and _looks_like_jsonl(head):
            kind = "jsonl"
        reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv}[kind](file, label, max_line_bytes)
    count = 0
    for line, row in reader:
        count += 1
        yield line, row
    if count == 0:
        yield None, RowError(label, None, None, "file is empty (no rows)", fatal=True)


def json_type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for messages ("array", not "list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _looks_like_jsonl(head: bytes) -> bool:
    # Many JSONL files are named .json: a first line that is a whole object followed by another object.
    first, _, rest = head.lstrip(_BOM).lstrip().partition(b"\n")
    if not first.startswith(b"{") or not rest.lstrip().startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


def _parse_line(text: str, line: int, label: str) -> dict | RowError:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return RowError(label, line, None, f"invalid JSON: {err.msg} (column {err.colno})")
    except RecursionError:
        return RowError(label, line, None, "JSON nested too deeply")
    except ValueError as err:  # e.g. an integer with more digits than Python will convert
        return RowError(label, line, None, f"invalid JSON: {err}")
    if not isinstance(value, dict):
        return RowError(label, line, None, f"row is a JSON {json_type_name(value)}, expected an object")
    return value


def _bounded_lines(handle, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line_no, raw bytes) per line; None for a line over the cap, which is skipped unread."""
    line = 0
    while True:
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        line += 1
        if len(raw.rstrip(b"\r\n")) > max_line_bytes:
            while not raw.endswith(b"\n"):
                raw = handle.readline(1 << 20)
                if not raw:
                    break
            yield line, None
            continue
        if line == 1:
            raw = raw.removeprefix(_BOM)
        yield line, raw


def _utf8_reason(raw: bytes, err: UnicodeDecodeError) -> str:
    return f"not valid UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}"


def _too_long_reason(max_line_bytes: int) -> str:
    limit = f"{max_line_bytes / (1 << 20):g} MiB" if max_line_bytes >= 1 << 20 else f"{max_line_bytes} bytes"
    return f"line is longer than the {limit} line limit; split or shorten this row"


def _read_jsonl(file: Path, label: str, max_line_bytes: int) -> Iterator[Row]:
    with open(file, "rb") as handle:
        for line, raw in _bounded_lines(handle, max_line_bytes):
            if raw is None:
                yield line, RowError(label, line, None, _too_long_reason(max_line_bytes))
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield line, RowError(label, line, None, _utf8_reason(raw, err))
                continue
            yield line, _parse_line(text.rstrip("\r\n"), line, label)


def _read_csv(file: Path, label: str, max_line_bytes: int) -> Iterator[Row]:
    bad_lines: dict[int, str] = {}

    def lines(handle) -> Iterator[str]:
        for line, raw in _bounded_lines(handle, max_line_bytes):
            if raw is None:
                bad_lines[line] = _too_long_reason(max_line_bytes)
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad_lines[line] = _utf8_reason(raw, err)
                yield raw.decode("utf-8", errors="replace")  # keeps the CSV structure for the next rows

    csv.field_size_limit(max_line_bytes)
    with open(file, "rb") as handle:
        reader = csv.reader(lines(handle))
        try:
            header = next(reader, None)
        except csv.Error as err:
            yield 1, RowError(label, 1, None, f"unreadable CSV header: {err}", fatal=True)
            return
        if bad_lines or not header:
            reason = bad_lines.get(1, "CSV file has no header row")
            yield 1, RowError(label, 1, None, f"header: {reason}", fatal=True)
            return
        header = [name.strip() for name in header]
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader, None)
            except csv.Error as err:
                if reader.line_num < start:  # the reader did not move on: stop rather than loop
                    yield start, RowError(label, start, None, f"unreadable CSV: {err}", fatal=True)
                    return
                yield start, RowError(label, start, None, f"unreadable CSV row: {err}")
                continue
            pending = sorted(n for n in bad_lines if n <= reader.line_num)
            for n in pending:
                yield n, RowError(label, n, None, bad_lines.pop(n))
            if values is None:
                return
            if pending or not values:
                continue
            yield start, _csv_row(header, values, start, label)


def _csv_row(header: list[str], values: list[str], line: int, label: str) -> dict | RowError:
    if len(values) < len(header):
        missing = header[len(values)]
        reason = f"row has {len(values)} of {len(header)} columns; column {missing!r} is missing"
        return RowError(label, line, missing, reason)
    if len(values) > len(header):
        return RowError(label, line, None, f"row has {len(values)} columns but the header has {len(header)}")
    return dict(zip(header, values))


def _read_parquet(file: Path, label: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(file)
        row = 0
        for batch in table.iter_batches(batch_size=1024):
            for value in batch.to_pylist():
                row += 1
                yield row, value
    except Exception as err:  # pyarrow raises several unrelated types for a corrupt file
        yield None, RowError(label, None, None, f"not a readable Parquet file ({type(err).__name__}: {err})", fatal=True)


def _read_json(file: Path, label: str, max_line_bytes: int) -> Iterator[Row]:
    if file.stat().st_size > MAX_JSON_FILE_BYTES:
        yield None, RowError(label, None, None, "JSON file over 1 GiB; convert it to JSONL (one row per line)", fatal=True)
        return
    raw = file.read_bytes().removeprefix(_BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        reason = f"not valid UTF-8: byte 0x{raw[err.start]:02x} at column {column}"
        yield line, RowError(label, line, None, reason, fatal=True)
        return
    del raw
    if _first_line_is_a_row(text):
        del text
        yield from _read_jsonl(file, label, max_line_bytes)
        return
    yield from _JsonScanner(text, label).rows()


def _first_line_is_a_row(text: str) -> bool:
    """A .json file whose first line is a whole object followed by another object is JSONL."""
    newline = text.find("\n")
    if newline < 0 or not text.lstrip().startswith("{") or not text[newline:].lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text[:newline]), dict)
    except (ValueError, RecursionError):
        return False


class _JsonScanner:
    """Walk a JSON document's top-level list (or its "data" list) element by element."""

    def __init__(self, text: str, label: str):
        self.text = text
        self.label = label
        self.decoder = json.JSONDecoder()
        self._line, self._line_pos = 1, 0

    def line_at(self, pos: int) -> int:
        if pos < self._line_pos:  # only after an error; counting from the start is fine then
            self._line, self._line_pos = 1, 0
        self._line += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def skip(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    def fatal(self, pos: int, reason: str, field: str | None = None) -> Row:
        line = self.line_at(pos)
        return line, RowError(self.label, line, field, reason, fatal=True)

    def rows(self) -> Iterator[Row]:
        pos = self.skip(0)
        if pos >= len(self.text):
            return
        if self.text[pos] == "[":
            yield from self.array(pos)
        elif self.text[pos] == "{":
            yield from self.data_member(pos)
        else:
            yield self.fatal(pos, 'a .json file must hold a list of rows or {"data": [...]}')

    def array(self, pos: int, field: str | None = None) -> Iterator[Row]:
        pos = self.skip(pos + 1)
        if self.text.startswith("]", pos):
            return
        while True:
            line = self.line_at(pos)
            try:
                value, pos = self.decoder.raw_decode(self.text, pos)
            except json.JSONDecodeError as err:
                yield self.fatal(err.pos, f"invalid JSON: {err.msg} (column {err.colno})")
                return
            except RecursionError:
                yield self.fatal(pos, "JSON nested too deeply")
                return
            if isinstance(value, dict):
                yield line, value
            else:
                reason = f"row is a JSON {json_type_name(value)}, expected an object"
                yield line, RowError(self.label, line, None, reason)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
            elif self.text.startswith("]", pos):
                return
            else:
                yield self.fatal(pos, "invalid JSON: expected ',' or ']' after a row")
                return

    def data_member(self, pos: int) -> Iterator[Row]:
        keys: list[str] = []
        pos = self.skip(pos + 1)
        while self.text.startswith('"', pos):
            try:
                key, pos = scanstring(self.text, pos + 1)
                pos = self.skip(pos)
                if not self.text.startswith(":", pos):
                    raise json.JSONDecodeError("expected ':'", self.text, pos)
                pos = self.skip(pos + 1)
                if key == "data":
                    if self.text.startswith("[", pos):
                        yield from self.array(pos)
                        return
                    value, _ = self.decoder.raw_decode(self.text, pos)
                    yield self.fatal(pos, f"must be a list of rows, got a JSON {json_type_name(value)}", "data")
                    return
                keys.append(key)
                _, pos = self.decoder.raw_decode(self.text, pos)
            except json.JSONDecodeError as err:
                yield self.fatal(err.pos, f"invalid JSON: {err.msg} (column {err.colno})")
                return
            except RecursionError:
                yield self.fatal(pos, "JSON nested too deeply")
                return
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
        shown = ", ".join(repr(k) for k in keys[:8]) or "no keys"
        yield None, RowError(
            self.label, None, "data", f'a .json object must hold the rows under "data": [...]; found {shown}', fatal=True
        )
