"""validate_file streams: the same report as read_dataset, without keeping the records."""

from __future__ import annotations

import json
import weakref

import pytest

import tunewise.data.dedup as dedup
import tunewise.data.pipeline as pipeline
from tunewise.data import read_dataset, validate_file

from ._helpers import chat_row

LONG_ANSWER = (
    "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill "
    "and the birds sing their morning songs across the quiet green valley below the old stone bridge"
)


def _mixed_file(path):
    """Unique rows with exact copies, near copies, invalid rows and a few long answers among them."""
    lines = []
    for i in range(60):
        answer = f"Answer number {i}: " + " ".join(f"w{i}k{k}" for k in range(8 + (i % 5) * 40))
        lines.append(json.dumps(chat_row(f"Question {i}?", answer)))
        if i % 9 == 4:
            lines.append(json.dumps(chat_row(f"Question {i}?", answer)))  # exact copy
        if i % 11 == 3:
            lines.append(json.dumps(chat_row(f"Describe scene {i}.", LONG_ANSWER)))
            lines.append(json.dumps(chat_row(f"Describe scene {i}.", LONG_ANSWER + " today")))  # near copy
        if i % 13 == 5:
            lines.append('{"messages": [{"role": "user", "content": "no answer"}]}')
            lines.append("{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("on_invalid", ["fail", "drop"])
def test_validate_file_reports_what_read_dataset_reports(tmp_path, on_invalid):
    path = _mixed_file(tmp_path / "mixed.jsonl")
    report = validate_file(path, on_invalid=on_invalid)
    assert report.exact_duplicates and report.near_duplicates and report.rows_kept
    assert (report.errors if on_invalid == "fail" else report.dropped)
    assert report.to_dict() == read_dataset(path, on_invalid=on_invalid).report.to_dict()


@pytest.mark.parametrize("on_too_long", ["drop", "truncate"])
def test_validate_file_with_a_tokenizer_reports_what_read_dataset_reports(tmp_path, tokenizer, on_too_long):
    # With on_invalid="drop", invalid rows and too-long rows share report.dropped: order must match too.
    path = _mixed_file(tmp_path / "mixed.jsonl")
    options = {"tokenizer": tokenizer, "max_length": 100, "on_too_long": on_too_long, "on_invalid": "drop"}
    report = validate_file(path, **options)
    assert report.too_long and report.near_duplicates and report.token_lengths
    data = read_dataset(path, tokenize=True, **options)
    assert report.to_dict() == data.report.to_dict()
    assert report.token_lengths == data.report.token_lengths
    assert len(data.examples) == len(data.records) == report.rows_kept


class _Record(dict):
    """A normalized record that a weak reference can follow."""


def _track_records(monkeypatch) -> dict[str, int]:
    """Counts of normalized records alive now and at most (sampled as each is made), from now on."""
    counts = {"alive": 0, "most": 0}
    normalize = pipeline._normalize_one

    def forget() -> None:
        counts["alive"] -= 1

    def tracked(*args):
        record = normalize(*args)
        if record is None:
            return None
        record = _Record(record)
        weakref.finalize(record, forget)
        counts["alive"] += 1
        counts["most"] = max(counts["most"], counts["alive"])
        return record

    monkeypatch.setattr(pipeline, "_normalize_one", tracked)
    monkeypatch.setattr(dedup, "_BATCH_WORDS", 60)  # near-duplicate batches of a few rows
    return counts


def test_validate_file_holds_records_only_a_batch_at_a_time(tmp_path, monkeypatch):
    path = _mixed_file(tmp_path / "mixed.jsonl")
    counts = _track_records(monkeypatch)
    report = validate_file(path)
    assert report.rows_kept > 50 and report.near_duplicates
    assert counts["most"] <= 15, f"{counts['most']} records alive at once"
    assert counts["alive"] == 0


def test_read_dataset_keeps_the_records(tmp_path, monkeypatch):
    # The same probe sees every kept record alive when the caller asks for them.
    path = _mixed_file(tmp_path / "mixed.jsonl")
    counts = _track_records(monkeypatch)
    data = read_dataset(path)
    assert counts["alive"] == len(data.records) == data.report.rows_kept > 50
