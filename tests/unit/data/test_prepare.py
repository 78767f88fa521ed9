"""prepare_data: split, validation file, mixing, too-long handling and errors, from a DataSpec."""

from __future__ import annotations

import pytest

from tunewise.data import IGNORE_INDEX, prepare_data, split_indices, validate_file
from tunewise.errors import DataError
from tunewise.spec import DataSpec, MixSpec

from ._helpers import FIXTURES, chat_row, labelled_text, write_jsonl


def _rows(n: int, prefix: str = "q") -> list[dict]:
    return [chat_row(f"{prefix} question number {i}?", f"Answer {i}: {'yes' if i % 2 else 'no'}.") for i in range(n)]


def test_split_is_deterministic_and_seeded(tmp_path, tokenizer):
    spec = DataSpec(train=str(write_jsonl(tmp_path / "d.jsonl", _rows(100))), val_fraction=0.2)
    first = prepare_data(spec, tokenizer, seed=1)
    again = prepare_data(spec, tokenizer, seed=1)
    other = prepare_data(spec, tokenizer, seed=2)
    assert len(first.validation) == 20 and len(first.train) == 80
    assert first.validation == again.validation and first.train == again.train
    assert first.validation != other.validation
    assert first.report.train_rows == 80 and first.report.validation_rows == 20
    assert first.report.validation_source == "split"


def test_split_indices_keep_order_and_bounds():
    records = [{"text": str(i)} for i in range(10)]
    train, val = split_indices(records, 0.3, seed=0)
    assert len(val) == 3 and sorted(train + val) == list(range(10)) and train == sorted(train)
    assert split_indices(records[:1], 0.5, seed=0) == ([0], [])
    assert split_indices(records, 0.0, seed=0) == (list(range(10)), [])


def test_validation_file_replaces_the_split_and_overlap_is_removed(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", _rows(10))
    val = write_jsonl(tmp_path / "val.jsonl", _rows(3, prefix="v") + _rows(1))  # last row also in train
    prepared = prepare_data(DataSpec(train=str(train), validation=str(val)), tokenizer, seed=0)
    assert len(prepared.train) == 10 and len(prepared.validation) == 3
    assert prepared.report.validation_source == str(val)
    assert prepared.report.extra_files["validation"]["overlap_with_train"] == [4]


def test_mix_rows_are_the_requested_fraction_of_training(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", _rows(90))
    general = write_jsonl(tmp_path / "general.jsonl", [{"text": f"General text number {i} about topic {i * 7}."} for i in range(200)])
    spec = DataSpec(train=str(train), val_fraction=0.0, mix=MixSpec(path=str(general), fraction=0.1))
    prepared = prepare_data(spec, tokenizer, seed=0)
    assert prepared.report.mixed_rows == 10 and len(prepared.train) == 100
    assert prepared.report.mixed_rows / len(prepared.train) == pytest.approx(0.1)
    assert prepare_data(spec, tokenizer, seed=0).train == prepared.train  # drawn deterministically
    mixed = prepared.train[-10:]
    assert all(m["labels"] == m["input_ids"] for m in mixed)  # text rows: every token trained


def test_mix_shortfall_is_reported(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", _rows(90))
    general = write_jsonl(tmp_path / "general.jsonl", [{"text": "Only one general row."}])
    spec = DataSpec(train=str(train), val_fraction=0.0, mix=MixSpec(path=str(general), fraction=0.1))
    prepared = prepare_data(spec, tokenizer, seed=0)
    assert prepared.report.mixed_rows == 1 and any("wanted 10" in w for w in prepared.report.warnings)


def test_mixing_preference_into_chat_is_refused(tmp_path, tokenizer):
    spec = DataSpec(train=str(FIXTURES / "chat.jsonl"), mix=MixSpec(path=str(FIXTURES / "preference.jsonl")))
    with pytest.raises(DataError, match="cannot be combined"):
        prepare_data(spec, tokenizer, seed=0)


def _long_row() -> dict:
    return chat_row("Tell me a long story. " * 30, "Once upon a time there was a model that learned to stop.")


def test_too_long_dropped_and_counted(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(5) + [_long_row()])
    spec = DataSpec(train=str(path), max_length=128, val_fraction=0.0)
    prepared = prepare_data(spec, tokenizer, seed=0)
    assert len(prepared.train) == 5 and prepared.report.too_long == 1
    (dropped,) = prepared.report.dropped
    assert dropped.line == 6 and "over max_length=128" in dropped.reason
    assert prepared.report.token_stats()["max"] > 128  # stats are of the data as written


def test_too_long_truncated_keeps_labels_consistent(tmp_path, tokenizer):
    row = chat_row("Short question?", " ".join(f"word{i}" for i in range(200)))
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    spec = DataSpec(train=str(path), max_length=64, on_too_long="truncate", val_fraction=0.0)
    (example,) = prepare_data(spec, tokenizer, seed=0).train
    assert len(example["input_ids"]) == len(example["labels"]) == 64
    assert labelled_text(tokenizer, example).startswith("word0 word1")
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(example["labels"], example["input_ids"]))


def test_truncation_that_leaves_no_answer_drops_the_row(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(3) + [_long_row()])
    spec = DataSpec(train=str(path), max_length=64, on_too_long="truncate", val_fraction=0.0)
    prepared = prepare_data(spec, tokenizer, seed=0)
    assert len(prepared.train) == 3 and "no answer tokens" in prepared.report.dropped[0].reason


def test_invalid_rows_fail_with_a_summary(tmp_path, tokenizer):
    rows = _rows(3) + [{"messages": [{"role": "user", "content": "Hi"}]}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError) as caught:
        prepare_data(DataSpec(train=str(path)), tokenizer, seed=0)
    assert f"{path}:4: messages[0].role" in caught.value.message
    assert "on_invalid=drop" in caught.value.hint
    assert caught.value.report.rows_read == 4


def test_invalid_rows_dropped_and_listed(tmp_path, tokenizer):
    rows = _rows(3) + [{"messages": [{"role": "user", "content": "Hi"}]}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    prepared = prepare_data(DataSpec(train=str(path), on_invalid="drop", val_fraction=0.0), tokenizer, seed=0)
    assert len(prepared.train) == 3 and prepared.report.dropped[0].line == 4


def test_nothing_to_train_on_is_an_error(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a"}])
    with pytest.raises(DataError, match="no usable rows"):
        prepare_data(DataSpec(train=str(path), format="alpaca", on_invalid="drop"), tokenizer, seed=0)


def test_preference_data_stays_as_records(tokenizer):
    prepared = prepare_data(DataSpec(train=str(FIXTURES / "preference.jsonl"), val_fraction=0.5), tokenizer, seed=0)
    assert prepared.kind == "preference" and prepared.format == "preference"
    assert len(prepared.train) == 1 and len(prepared.validation) == 1
    assert set(prepared.train[0]) == {"prompt", "chosen", "rejected"}
    assert prepared.report.token_stats() is not None


def test_untokenized_records_without_a_tokenizer():
    prepared = prepare_data(DataSpec(train=str(FIXTURES / "alpaca.jsonl"), val_fraction=0.0), None, seed=0, tokenize=False)
    assert prepared.train[0]["messages"][1] == {"role": "assistant", "content": "5"}


def test_report_to_dict_is_json_ready(tmp_path, tokenizer):
    import json

    report = validate_file(FIXTURES / "chat.jsonl", tokenizer=tokenizer, max_length=512)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["format"] == "chat" and payload["token_stats"]["max"] >= payload["token_stats"]["min"] > 0
    assert payload["masking"] == "incremental" and payload["too_long"] == {"count": 0, "max_length": 512, "action": "drop"}


def test_validation_of_many_rows_counts_every_row(tmp_path):
    """Validation + exact/near dedup over 5k rows accounts for every row (speed is measured in bench/)."""
    rows = [chat_row(f"Question {i} about item {i * 31 % 977} in set {i % 13}?", f"The answer for {i} is {i * 7 % 101}, because it is.") for i in range(5_000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    report = validate_file(path)
    assert report.rows_read == 5_000
    assert not report.errors
    assert report.rows_kept + len(report.exact_duplicates) + len(report.near_duplicates) + len(report.dropped) == 5_000


def test_validation_records_are_the_normalized_held_out_rows(tmp_path, tokenizer):
    spec = DataSpec(train=str(write_jsonl(tmp_path / "d.jsonl", _rows(10))), val_fraction=0.2)
    prepared = prepare_data(spec, tokenizer, seed=0)
    assert len(prepared.validation_records) == len(prepared.validation) == 2
    assert all(set(r) == {"messages"} for r in prepared.validation_records)
