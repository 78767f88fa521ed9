"""Alignment data goes through the data pipeline: clear file:line errors, and the right shape per method."""

from __future__ import annotations

import json

import pytest

from tests.helpers import write_chat_dataset
from tests.unit.align.conftest import FIXTURES, align_spec
from tunewise.align.data import load_align_data, unpair
from tunewise.align.synthesize import read_prompts
from tunewise.errors import DataError
from tunewise.spec import load_spec


def _load(tiny_model_dir, tokenizer, data, method, need):
    spec = load_spec(raw=align_spec(tiny_model_dir, data, method))
    return load_align_data(spec, tokenizer, method, need)


def test_bad_preference_file_names_every_bad_line(tiny_model_dir, tokenizer):
    with pytest.raises(DataError) as caught:
        _load(tiny_model_dir, tokenizer, FIXTURES / "bad_pairs.jsonl", "dpo", "paired")
    message = caught.value.message
    for expected in ("bad_pairs.jsonl:2", "missing key 'rejected'", "bad_pairs.jsonl:3", "identical to chosen",
                     "bad_pairs.jsonl:4", "bad_pairs.jsonl:5", "invalid JSON", "bad_pairs.jsonl:6"):
        assert expected in message, (expected, message)
    assert "on_invalid=drop" in (caught.value.hint or "")


def test_paired_rows_become_trl_conversations(tiny_model_dir, tokenizer):
    data = _load(tiny_model_dir, tokenizer, FIXTURES / "pairs.jsonl", "dpo", "paired")
    assert data.shape == "paired" and len(data.train) + len(data.validation) == 20 and data.validation
    row = data.train[0]
    assert row["prompt"] == [{"role": "user", "content": row["prompt"][0]["content"]}]
    assert row["chosen"][0]["role"] == "assistant" and row["rejected"][0]["role"] == "assistant"


def test_unpaired_rows_are_refused_by_dpo_and_taken_by_kto(tiny_model_dir, tokenizer):
    with pytest.raises(DataError, match="needs preference pairs .* holds unpaired rows") as caught:
        _load(tiny_model_dir, tokenizer, FIXTURES / "unpaired.jsonl", "dpo", "paired")
    assert "kto" in caught.value.hint
    data = _load(tiny_model_dir, tokenizer, FIXTURES / "unpaired.jsonl", "kto", "paired_or_unpaired")
    assert data.shape == "unpaired" and {r["label"] for r in data.train + data.validation} == {True, False}


def test_chat_data_gives_prompts_for_rl_but_not_pairs(tiny_model_dir, tokenizer, tmp_path):
    chat = write_chat_dataset(tmp_path / "chat.jsonl", rows=10)
    with pytest.raises(DataError, match="holds conversation rows"):
        _load(tiny_model_dir, tokenizer, chat, "dpo", "paired")
    data = _load(tiny_model_dir, tokenizer, chat, "ppo", "prompts")
    assert all(row["prompt"][-1]["role"] == "user" and len(row["prompt"]) == 1 for row in data.train)


def test_prompt_only_rows_feed_rl_and_are_refused_by_the_other_methods(tiny_model_dir, tokenizer):
    data = _load(tiny_model_dir, tokenizer, FIXTURES / "prompts.jsonl", "grpo", "prompts")
    assert data.shape == "prompts" and len(data.train) + len(data.validation) == 10
    assert all(set(row) == {"prompt"} and row["prompt"][-1]["role"] == "user" for row in data.train)
    with pytest.raises(DataError, match="needs preference pairs .* holds prompt rows") as caught:
        _load(tiny_model_dir, tokenizer, FIXTURES / "prompts.jsonl", "dpo", "paired")
    assert "ppo or grpo" in caught.value.hint


def test_supervised_training_refuses_rows_without_answers(tiny_model_dir):
    from tunewise.train.run import run_training_job

    for data, kind in ((FIXTURES / "prompts.jsonl", "prompt"), (FIXTURES / "pairs.jsonl", "preference")):
        with pytest.raises(DataError, match=f"method lora learns from answers, but the file holds {kind} rows"):
            run_training_job(load_spec(raw=align_spec(tiny_model_dir, data, "lora", name=f"t-sft-{kind}")))


def test_unpair_turns_each_pair_into_a_good_and_a_bad_row():
    pair = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    assert [(r["completion"][0]["content"], r["label"]) for r in unpair([pair])] == [("a", True), ("b", False)]


def test_read_prompts_from_text_rows_and_messages(tmp_path):
    assert read_prompts(FIXTURES / "prompts.txt")[0] == "Describe the sea."
    rows = tmp_path / "prompts.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Plain text."},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]},
        {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]},
    ]) + "\n")
    prompts = read_prompts(rows)
    assert prompts[0] == "Plain text." and prompts[1][-1]["content"] == "Hi?"
    assert prompts[2] == [{"role": "user", "content": "Q1"}]


def test_read_prompts_names_the_bad_line(tmp_path):
    rows = tmp_path / "prompts.jsonl"
    rows.write_text('{"prompt": "ok"}\n{"text": "no prompt here"}\n{"prompt": [{"role": "assistant", "content": "x"}]}\n')
    with pytest.raises(DataError) as caught:
        read_prompts(rows)
    assert "prompts.jsonl:2" in caught.value.message and "prompts.jsonl:3" in caught.value.message


def test_rows_with_tool_calls_keep_each_calls_own_arguments():
    """Arrow would merge the argument objects of all calls into one struct (nulls for the others' keys)."""
    from tunewise.align.data import to_dataset

    def call(name, arguments):
        return [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": name, "arguments": arguments}}]}]

    rows = [{"prompt": [{"role": "user", "content": "q"}], "chosen": call("a", {"city": "Oslo"}),
             "rejected": [{"role": "assistant", "content": "no"}], "tools": "[]"},
            {"prompt": [{"role": "user", "content": "q"}], "chosen": call("b", {"count": 2}),
             "rejected": [{"role": "assistant", "content": "no"}], "tools": "[]"}]
    dataset = to_dataset(rows)
    assert [dataset[i] for i in range(2)] == rows
    plain = to_dataset([{"prompt": [{"role": "user", "content": "q"}],
                         "completion": [{"role": "assistant", "content": "a"}], "label": True}])
    assert plain[0]["label"] is True and plain[0]["prompt"] == [{"role": "user", "content": "q"}]


def test_tools_reach_trl_through_a_template_that_renders_them(tiny_model_dir, tokenizer):
    """DPO, KTO and reward rows keep tool calls and a tools column; ORPO's (row_tools=False) get text."""
    import copy

    from tunewise.align.probe import KLProbe

    shapes = FIXTURES.parent / "data" / "formats"
    native = copy.deepcopy(tokenizer)
    native.chat_template = (shapes / "tool_template.jinja").read_text(encoding="utf-8")
    spec = load_spec(raw=align_spec(tiny_model_dir, shapes / "openai_preference.jsonl", "dpo"))
    spec.data.max_length = 512

    def tool_row(data):
        return next(r for r in data.train + data.validation if r["prompt"][-1]["content"] == "Weather in Cork?")

    row = tool_row(load_align_data(spec, native, "dpo", "paired"))
    assert json.loads(row["tools"])[0]["function"]["name"] == "get_weather"
    assert row["chosen"][0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Cork"}}
    assert KLProbe([row], native, max_length=512).batch is not None  # the probe renders the row as the trainer does
    text = tool_row(load_align_data(spec, native, "orpo", "paired", row_tools=False))
    assert "tools" not in text and text["chosen"][0]["content"].startswith("<tool_call>")
