"""Every format is detected from its keys and normalized to the documented record shape."""

from __future__ import annotations

import pytest

from tunewise.data import detect_format, format_names, get_format, load_rows, read_dataset, validate_file
from tunewise.errors import DataError
from tunewise.spec import FORMAT_NAMES

from ._helpers import FIXTURES, write_jsonl

FIXTURE_FORMATS = {
    "alpaca.jsonl": "alpaca",
    "alpaca_data.json": "alpaca",
    "chat.jsonl": "chat",
    "sharegpt.json": "sharegpt",
    "completion.csv": "completion",
    "text.jsonl": "text",
    "prompt.jsonl": "prompt",
    "preference.jsonl": "preference",
    "kto.jsonl": "preference",
}


def test_registry_matches_spec_format_names():
    assert sorted(format_names()) == sorted(FORMAT_NAMES)


@pytest.mark.parametrize("name", format_names())
def test_each_format_normalizes_its_own_example(name):
    fmt = get_format(name)
    assert detect_format([fmt.example]) == name
    record = fmt.normalize(fmt.example)
    assert set(record) in ({"messages"}, {"text"}, {"segments"}, {"prompt", "chosen", "rejected"}, {"prompt"})


@pytest.mark.parametrize("filename,expected", sorted(FIXTURE_FORMATS.items()))
def test_fixture_files_detected_and_clean(filename, expected):
    report = validate_file(FIXTURES / filename)
    assert report.format == expected and report.format_detected
    assert report.ok, report.summary()
    assert report.rows_kept == report.rows_read > 0


def test_alpaca_joins_instruction_and_input():
    data = read_dataset(FIXTURES / "alpaca.jsonl")
    first, second = data.records[0]["messages"], data.records[1]["messages"]
    assert first == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert second[0]["content"] == "Name a primary colour."  # empty input adds nothing


def test_chat_keeps_system_and_weights():
    records = read_dataset(FIXTURES / "chat.jsonl").records
    assert records[0]["messages"][0] == {"role": "system", "content": "You answer in one word."}
    assert [m.get("weight") for m in records[1]["messages"]] == [None, 0, None, 1]


def test_sharegpt_maps_roles():
    records = read_dataset(FIXTURES / "sharegpt.json").records
    assert [m["role"] for m in records[0]["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in records[1]["messages"]] == ["user", "assistant"]


def test_sharegpt_top_level_system_key():
    record = get_format("sharegpt").normalize(
        {"system": "Be terse.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    )
    assert record["messages"][0] == {"role": "system", "content": "Be terse."}


def test_completion_csv_handles_quotes_and_multiline_cells():
    data = read_dataset(FIXTURES / "completion.csv")
    assert data.records[1]["messages"][0]["content"] == 'Write "hi"'
    assert data.records[2]["messages"][0]["content"] == "A poem,\nplease"
    assert data.lines == [2, 3, 4]


def test_text_record():
    assert read_dataset(FIXTURES / "text.jsonl").records[0] == {"text": "Photosynthesis turns light into chemical energy."}


def test_preference_paired_string_and_messages():
    data = read_dataset(FIXTURES / "preference.jsonl")
    assert data.report.preference_kind == "paired"
    first, second = data.records
    assert first == {
        "prompt": [{"role": "user", "content": "Say hi politely."}],
        "chosen": [{"role": "assistant", "content": "Hello, nice to meet you!"}],
        "rejected": [{"role": "assistant", "content": "What do you want?"}],
    }
    assert [m["role"] for m in second["prompt"]] == ["system", "user"]


def test_preference_unpaired_kto_rows():
    data = read_dataset(FIXTURES / "kto.jsonl")
    assert data.report.format == "preference" and data.report.preference_kind == "unpaired"
    assert data.records[1] == {
        "prompt": [{"role": "user", "content": "Say hi politely."}],
        "completion": [{"role": "assistant", "content": "What do you want?"}],
        "label": False,
    }


def test_prompt_only_rows_become_prompt_messages():
    data = read_dataset(FIXTURES / "prompt.jsonl")
    assert data.kind == "prompt" and data.report.format == "prompt"
    first, second, third = data.records
    assert first == {"prompt": [{"role": "user", "content": "Describe the sea in one sentence."}]}
    assert [m["role"] for m in second["prompt"]] == ["system", "user"]
    assert [m["role"] for m in third["prompt"]] == ["user", "assistant", "user"]


def test_bad_prompt_rows_are_named_by_file_line_and_field(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": "Fine."},
        {"prompt": "  "},
        {"prompt": [{"role": "assistant", "content": "I start."}]},
        {"prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"prompt": 5},
        {"prompt": "Fine too."},
    ])
    report = validate_file(path, tokenizer=tokenizer, max_length=64)
    assert report.format == "prompt" and not report.ok and report.rows_kept == 2
    problems = [str(p) for p in report.errors]
    assert problems == [
        f"{path}:2: prompt: is empty",
        f"{path}:3: prompt[0].role: expected 'user' as the first turn, got 'assistant'",
        f"{path}:4: prompt[1].role: the conversation must end with a turn by 'user', got 'assistant'",
        f"{path}:5: prompt: expected a list of messages, got a JSON number",
    ]
    assert report.token_lengths and max(report.token_lengths) < 64  # a prompt alone is measured


def test_a_few_broken_pairs_leave_a_file_preference_data():
    pair = {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert detect_format([pair, pair, {"prompt": "q", "chosen": "a"}]) == "preference"
    assert detect_format([{"prompt": "q"}, {"prompt": "q", "chosen": "a"}]) == "prompt"


def test_content_parts_are_joined():
    record = get_format("chat").normalize({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
        {"role": "assistant", "content": "Hi"},
    ]})
    assert record["messages"][0]["content"] == "Hello"


def test_detection_prefers_the_longer_signature():
    assert detect_format([{"prompt": "a", "completion": "b", "label": True}]) == "preference"
    assert detect_format([{"prompt": "a", "completion": "b"}]) == "completion"


def test_detection_uses_majority_of_first_rows(tmp_path):
    rows = [{"text": "stray"}] + [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(5)]
    assert detect_format(load_rows(write_jsonl(tmp_path / "mixed.jsonl", rows))) == "alpaca"


def test_detection_failure_names_keys_and_formats():
    with pytest.raises(DataError) as caught:
        detect_format([{"question": "a", "answer": "b"}])
    assert "answer, question" in caught.value.message and "alpaca (instruction, output)" in caught.value.message


def test_forced_format_overrides_detection(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b", "text": "t"}])
    assert validate_file(path).format == "completion"
    report = validate_file(path, format="text")
    assert report.format == "text" and report.format_detected is False and report.ok


def test_unknown_forced_format_is_a_data_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "t"}])
    with pytest.raises(DataError, match="unknown format 'nope'"):
        validate_file(path, format="nope")
