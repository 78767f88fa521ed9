"""Datasets in the shapes OpenAI, TRL, LLaMA-Factory and Axolotl write: detected, validated, never misread.

tests/fixtures/data/formats/expected.json describes each fixture (or fixture + forced format): the
format and variant it is read as, rows read and kept, the row errors (line, field, a phrase of the
reason; all of them, or the first ones and `error_count`), and the fields reported unused. Each runs
through the Python API and through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.cli import main
from tunewise.data import detect_format, get_format, read_dataset, validate_file
from tunewise.data.formats import SHAPE_METHODS, all_formats
from tunewise.spec import FORMAT_NAMES

from ._helpers import FIXTURES

SHAPES = FIXTURES / "formats"
EXPECTED: dict[str, dict] = json.loads((SHAPES / "expected.json").read_text(encoding="utf-8"))


def _case(name: str) -> tuple[Path, list[str], str | None]:
    expected = EXPECTED[name]
    args = expected.get("args", [])
    forced = args[args.index("--format") + 1] if "--format" in args else None
    return SHAPES / expected.get("file", name), args, forced


def _check(payload: dict, expected: dict, path: Path) -> None:
    """The report (its JSON twin) says what expected.json says."""
    assert (payload["format"], payload["variant"]) == (expected["format"], expected["variant"])
    assert (payload["rows_read"], payload["rows_kept"]) == (expected["read"], expected["kept"])
    if "kind" in expected:
        assert payload["preference_kind"] == expected["kind"]
    errors = payload["errors"]
    assert len(errors) == expected.get("error_count", len(expected["errors"])), errors
    for got, (line, field, phrase) in zip(errors, expected["errors"]):
        assert (got["file"], got["line"], got["field"]) == (str(path), line, field), got
        assert phrase in got["reason"], got
    assert sorted(payload["unused_fields"]) == sorted(expected.get("unused", []))
    for field in expected.get("fields", []):
        assert field in payload["field_mapping"], (field, payload["field_mapping"])


def test_every_fixture_is_described():
    described = {e.get("file", name) for name, e in EXPECTED.items()}
    assert described == {p.name for p in SHAPES.iterdir() if p.suffix in (".json", ".jsonl") and p.name != "expected.json"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_python_api(name):
    path, _, forced = _case(name)
    report = validate_file(path, format=forced)
    _check(report.to_dict(), EXPECTED[name], path)
    assert report.format_detected is (forced is None)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_json(name, capsys):
    path, args, _ = _case(name)
    with pytest.raises(SystemExit) as exited:
        main(["data", "validate", str(path), "--no-tokenize", "--json", *args])
    payload = json.loads(capsys.readouterr().out)
    _check(payload, EXPECTED[name], path)
    assert exited.value.code == (1 if EXPECTED[name]["errors"] else 0)


def test_cli_text_names_format_variant_fields_and_unused(capsys):
    path = SHAPES / "chat_one_labelled_row.jsonl"
    with pytest.raises(SystemExit):
        main(["data", "validate", str(path), "--no-tokenize"])
    out = capsys.readouterr().out
    assert "chat (openai), detected" in out and "source      OpenAI, TRL" in out
    assert "messages[].role: system, user, assistant" in out
    assert f"label: in 1 row(s), first at {path}:3; not read" in out
    assert f"{path}:3: label: marks the answer desirable or undesirable (a KTO label)" in out


def test_validation_with_the_tokenizer_measures_every_shape(tokenizer):
    """Token lengths for every valid fixture: conversations with tools, pairs, KTO rows, segments."""
    for name, expected in EXPECTED.items():
        if expected["errors"] or "args" in expected:
            continue
        report = validate_file(SHAPES / name, tokenizer=tokenizer, max_length=512)
        assert report.ok and len(report.token_lengths) == expected["kept"], (name, report.summary())
        has_tools = name.startswith(("openai_chat_tools", "openai_preference", "llama_factory_sharegpt_tools",
                                     "trl_conversational", "llama_factory_v1.jsonl"))
        assert (report.tool_rendering is not None) == has_tools, name


def test_tool_rendering_is_reported_with_the_bundled_template(tokenizer):
    report = validate_file(SHAPES / "openai_chat_tools.jsonl", tokenizer=tokenizer)
    assert report.tool_rendering.startswith("tunewise text")
    assert any("this model's chat template does not render tools" in w for w in report.warnings)


@pytest.mark.parametrize("fmt,variant", [(f.name, v.name) for f in all_formats() for v in f.variants])
def test_each_variant_example_is_detected_and_read_as_itself(fmt, variant):
    example = get_format(fmt).variant(variant).example
    assert detect_format([example]) == fmt
    assert get_format(fmt).variant_of(example).name == variant
    get_format(fmt).normalize(example)  # valid


def test_format_names_and_methods_stay_true():
    from tunewise.methods import all_methods

    assert sorted(f.name for f in all_formats()) == sorted(FORMAT_NAMES)
    known = {m.name for m in all_methods()}
    for methods in SHAPE_METHODS.values():
        assert set(methods) <= known


def test_openai_tool_rows_normalize_to_template_shapes():
    records = read_dataset(SHAPES / "openai_chat_tools.jsonl").records
    call = records[0]["messages"][2]
    assert call == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}, "id": "call_0"}]}
    result = {"role": "tool", "content": '{"temp_c": 10, "sky": "rain"}', "tool_call_id": "call_0"}
    assert records[0]["messages"][3] == result
    assert [t["function"]["name"] for t in records[0]["tools"]] == ["get_weather", "get_time"]
    legacy = records[8]  # functions + function_call + role function
    assert legacy["tools"][0]["function"]["name"] == "get_time"
    assert legacy["messages"][1]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": {"city": "Kobe"}}
    assert legacy["messages"][2] == {"role": "tool", "content": "09:30", "name": "get_time"}


def test_preference_shapes_become_the_same_records():
    openai = read_dataset(SHAPES / "openai_preference.jsonl").records[0]
    assert openai["prompt"][1] == {"role": "user", "content": "Describe rain."}
    assert openai["chosen"] == [{"role": "assistant", "content": "Rain is calm."}]
    implicit = read_dataset(SHAPES / "trl_implicit_prompt.jsonl").records
    assert implicit[0] == {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                           "chosen": [{"role": "assistant", "content": "It is blue."}],
                           "rejected": [{"role": "assistant", "content": "It is green."}]}
    assert [m["content"] for m in implicit[2]["prompt"]] == ["2+2?", "4", "And 3+3?"]
    sharegpt = read_dataset(SHAPES / "llama_factory_sharegpt_pairs.json").records[1]
    assert sharegpt["prompt"][0] == {"role": "system", "content": "Answer briefly."}
    assert sharegpt["chosen"] == [{"role": "assistant", "content": "Blue."}]
    v1 = read_dataset(SHAPES / "llama_factory_v1_pairs.jsonl").records[0]
    assert v1["prompt"] == [{"role": "user", "content": "Sky color?"}] and v1["rejected"][0]["content"] == "Green."


def test_kto_labels_come_from_label_and_kto_tag():
    rows = read_dataset(SHAPES / "llama_factory_kto.json")
    assert rows.report.preference_kind == "unpaired"
    assert [r["label"] for r in rows.records] == [True, False] * 4
    assert rows.records[1]["completion"] == [{"role": "assistant", "content": "No. I will not talk about the sea."}]
    alpaca = read_dataset(SHAPES / "llama_factory_alpaca_kto.json").records
    assert [(r["completion"][0]["content"], r["label"]) for r in alpaca] == [("Hello there!", True), ("Go away.", False)]


def test_conversational_completion_trains_the_completion_only():
    record = read_dataset(SHAPES / "trl_conversational_completion.jsonl").records[1]
    weights = [(m["role"], m.get("weight")) for m in record["messages"]]
    assert weights == [("system", None), ("user", None), ("assistant", 0), ("user", None), ("assistant", None)]


def test_alpaca_history_and_system_become_turns():
    record = read_dataset(SHAPES / "llama_factory_alpaca_history.json").records[0]
    assert [m["content"] for m in record["messages"]] == [
        "Answer with a city.", "Capital of France?", "Paris.", "Of Italy?", "Rome.", "And of Spain?", "Madrid."]


def test_llama_factory_tool_roles_and_parts():
    sharegpt = read_dataset(SHAPES / "llama_factory_sharegpt_tools.json").records[1]
    roles = [m["role"] for m in sharegpt["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant"]
    calls = sharegpt["messages"][2]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Pune"}, {"city": "Oslo"}]
    v1 = read_dataset(SHAPES / "llama_factory_v1.jsonl").records
    assert v1[1]["messages"][1]["weight"] == 0
    assert v1[2]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_label_on_a_minority_of_rows_is_refused_not_ignored():
    """The file reads as chat (most rows); the labelled row is not trained as SFT on its bad answer."""
    data = read_dataset(SHAPES / "chat_one_labelled_row.jsonl")
    assert len(data.records) == 2 and all("label" not in r for r in data.records)
    assert data.report.errors[0].line == 3


def test_cli_lists_formats_and_variants(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["data", "formats", "--json"])
    assert exited.value.code == 0
    listed = {f["name"]: [v["name"] for v in f["variants"]] for f in json.loads(capsys.readouterr().out)}
    assert listed["preference"][:3] == ["trl", "trl implicit prompt", "openai"] and "tools" in listed["chat"]
    assert set(listed) == set(FORMAT_NAMES)
    with pytest.raises(SystemExit):
        main(["data", "formats", "chat"])
    detail = capsys.readouterr().out
    assert "messages[].tool_calls" in detail and "parallel_tool_calls" in detail and "example:" in detail
    with pytest.raises(SystemExit):
        main(["data", "formats"])
    assert "llama-factory kto" in capsys.readouterr().out
