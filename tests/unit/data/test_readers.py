"""Reading JSONL, JSON, CSV and Parquet: rows, line numbers, and problems as values, never exceptions."""

from __future__ import annotations

import json

from tunewise.data import RowError, load_rows, read_dataset, validate_file

from ._helpers import FIXTURES, write_jsonl


def _rows(path, **kwargs):
    return list(load_rows(path, **kwargs))


def test_jsonl_line_numbers_skip_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n   \n{"text": "b"}\n', encoding="utf-8")
    assert _rows(path) == [(1, {"text": "a"}), (4, {"text": "b"})]


def test_jsonl_with_bom_and_crlf(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}\r\n')
    assert [row for _, row in _rows(path)] == [{"text": "a"}, {"text": "b"}]


def test_json_list_rows_carry_their_start_line():
    rows = _rows(FIXTURES / "sharegpt.json")
    assert [line for line, _ in rows] == [2, 18]
    assert all(isinstance(row, dict) for _, row in rows)


def test_json_data_wrapper():
    rows = _rows(FIXTURES / "alpaca_data.json")
    assert [row["instruction"] for _, row in rows] == ["Say yes.", "Say no."]
    assert [line for line, _ in rows] == [3, 7]


def test_jsonl_named_json_is_read_as_jsonl(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    assert _rows(path) == [(1, {"text": "a"}), (2, {"text": "b"})]


def test_empty_json_list_is_an_empty_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[]", encoding="utf-8")
    (line, problem), = _rows(path)
    assert isinstance(problem, RowError) and problem.fatal and "empty" in problem.reason


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b"], "output": ["1", "2"]}), path)
    report = validate_file(path)
    assert report.format == "alpaca" and report.rows_kept == 2


def test_parquet_nested_messages(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "chat.parquet"
    messages = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]]
    pq.write_table(pa.table({"messages": messages}), path)
    data = read_dataset(path)
    assert data.report.format == "chat" and data.records[0]["messages"][1]["content"] == "Yo"


def test_huge_line_is_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "' + "x" * 5000 + '"}\n{"text": "c"}\n', encoding="utf-8")
    rows = _rows(path, max_line_bytes=1000)
    assert rows[0] == (1, {"text": "a"}) and rows[2] == (3, {"text": "c"})
    line, problem = rows[1]
    assert line == 2 and isinstance(problem, RowError) and "line limit" in problem.reason


def test_huge_line_in_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text\nshort\n" + "y" * 5000 + "\nlast\n", encoding="utf-8")
    rows = _rows(path, max_line_bytes=1000)
    assert rows[0] == (2, {"text": "short"}) and rows[2] == (4, {"text": "last"})
    assert rows[1][0] == 3 and "line limit" in rows[1][1].reason


def test_non_utf8_line_does_not_hide_the_next_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n{"text": "c"}\n')
    rows = _rows(path)
    assert rows[0][1] == {"text": "a"} and rows[2][1] == {"text": "c"}
    assert rows[1][0] == 2 and "0xff" in rows[1][1].reason


def test_rows_read_accounts_for_every_row(tmp_path):
    rows = [{"instruction": "a", "output": "1"}, {"instruction": "a", "output": "1"}, {"instruction": "b"}, 7]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    report = validate_file(path, on_invalid="drop")
    assert report.rows_read == 5
    removed = len(report.dropped) + len(report.exact_duplicates) + len(report.near_duplicates)
    assert report.rows_kept + removed + len(report.errors) == report.rows_read
    assert report.ok and report.rows_kept == 1


def test_drop_mode_keeps_file_level_errors_fatal(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("", encoding="utf-8")
    report = validate_file(path, on_invalid="drop")
    assert not report.ok


def test_all_rows_invalid_in_drop_mode_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a"}, {"instruction": "b"}])
    report = validate_file(path, format="alpaca", on_invalid="drop")
    assert not report.ok and "no usable rows" in str(report.errors[-1])
    assert len(report.dropped) == 2


def test_jsonl_named_json_with_a_long_first_line(tmp_path):
    path = tmp_path / "d.json"
    first = json.dumps({"text": "x" * 20_000})
    path.write_text(first + "\n" + json.dumps({"text": "b"}) + "\n", encoding="utf-8")
    rows = _rows(path)
    assert [line for line, _ in rows] == [1, 2] and rows[1][1] == {"text": "b"}


def test_minified_json_on_one_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": [{"text": "a"}, {"text": "b"}]}), encoding="utf-8")
    assert _rows(path) == [(1, {"text": "a"}), (1, {"text": "b"})]


def test_file_of_only_bad_lines_is_an_error_even_in_drop_mode(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("not json\nstill not json\n", encoding="utf-8")
    report = validate_file(path, on_invalid="drop")
    assert not report.ok and len(report.dropped) == 2 and "no usable rows" in str(report.errors[0])
