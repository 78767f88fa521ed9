"""Tool calling: the loss falls on the assistant's tool calls and answers, never on tool results or schemas.

Both renderings are checked on real tokenized rows: the bundled template, which has no tool support
(tunewise writes tools as text), and a template that renders tools itself (passed `tools=`).
"""

from __future__ import annotations

import copy
import json

import pytest

from tunewise.data import read_dataset, render_prompt, tokenize_record
from tunewise.data.chat_view import template_renders_tools, text_view

from ._helpers import FIXTURES, labelled_runs

SHAPES = FIXTURES / "formats"


@pytest.fixture(scope="module")
def tool_tokenizer(tokenizer):
    """The bundled tokenizer with a chat template that renders tools."""
    native = copy.deepcopy(tokenizer)
    native.chat_template = (SHAPES / "tool_template.jinja").read_text(encoding="utf-8")
    return native


def _records(name: str) -> list[dict]:
    return read_dataset(SHAPES / name).records


def _expected_answer(message: dict, native: bool) -> str:
    """What an assistant turn renders as: the test template's <call> tags, or tunewise's text."""
    if not native:
        return text_view([message], None)[0]["content"]
    calls = "".join(f'<call>{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})}</call>'
                    for c in message.get("tool_calls", []))
    return message["content"] + calls


@pytest.mark.parametrize("native", [False, True], ids=["tunewise-text", "template-tools"])
def test_tool_calls_are_trained_and_tool_results_are_not(native, tokenizer, tool_tokenizer):
    tok = tool_tokenizer if native else tokenizer
    assert template_renders_tools(tok) is native
    for record in _records("openai_chat_tools.jsonl"):
        example = tokenize_record(tok, record)
        rendered = tok.decode(example["input_ids"])
        assistant = [m for m in record["messages"] if m["role"] == "assistant"]
        # Exactly the assistant turns are labelled, each with the eos that closes it: calls included.
        assert labelled_runs(tok, example) == [_expected_answer(m, native) + tok.eos_token for m in assistant]
        results = [m["content"] for m in record["messages"] if m["role"] == "tool"]
        assert all(result in rendered for result in results)  # in the context, never in a labelled run (above)
        for tool in record.get("tools", []):
            assert tool["function"]["name"] in rendered.split("<|im_start|>user")[0]  # schemas lead the prompt


def test_parallel_calls_and_their_results(tokenizer):
    record = _records("openai_chat_tools.jsonl")[6]  # two calls, two results answered out of order
    runs = labelled_runs(tokenizer, tokenize_record(tokenizer, record))
    assert runs[0].count("<tool_call>") == 2 and '"get_time"' in runs[0] and '"get_weather"' in runs[0]
    assert runs[1] == f"3 C at 14:05 in Graz.{tokenizer.eos_token}"


def test_text_rendering_of_tools(tokenizer):
    record = _records("openai_chat_tools.jsonl")[0]
    view = text_view(record["messages"], record["tools"])
    assert view[0]["role"] == "system" and view[0]["content"].startswith("You help with weather questions.\n\n")
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in view[0]["content"]
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert view[2] == {"role": "assistant", "content": call}
    assert view[3] == {"role": "user", "content": '<tool_response>\n{"temp_c": 10, "sky": "rain"}\n</tool_response>'}
    parallel = text_view(_records("openai_chat_tools.jsonl")[6]["messages"], None)
    assert [m["role"] for m in parallel] == ["user", "assistant", "user", "assistant"]  # results share one turn
    assert parallel[2]["content"].count("<tool_response>") == 2


def test_llama_factory_tool_rows_mask_the_same_way(tokenizer, tool_tokenizer):
    for tok in (tokenizer, tool_tokenizer):
        for record in _records("llama_factory_sharegpt_tools.json") + _records("llama_factory_v1.jsonl"):
            native = tok is tool_tokenizer
            trained = [m for m in record["messages"] if m["role"] == "assistant" and m.get("weight", 1)]
            assert labelled_runs(tok, tokenize_record(tok, record)) == [
                _expected_answer(m, native) + tok.eos_token for m in trained]


def test_prompts_with_tools_render_the_schemas(tokenizer, tool_tokenizer):
    record = _records("openai_chat_tools.jsonl")[0]
    prompt = record["messages"][:2]
    assert "<tools>" in render_prompt(tokenizer, prompt, tools=record["tools"])
    native = render_prompt(tool_tokenizer, prompt, tools=record["tools"])
    assert "# Tools" in native and native.endswith("<|im_start|>assistant\n")


def test_axolotl_segments_are_labelled_as_written(tokenizer):
    first, second = _records("axolotl_input_output.jsonl")
    example = tokenize_record(tokenizer, first)
    written = "".join(segment["text"] for segment in first["segments"])
    assert tokenizer.decode(example["input_ids"]) == written  # nothing added, nothing templated
    assert labelled_runs(tokenizer, example) == ["<|im_start|>assistant\nhi there!<|im_end|>"]
    assert labelled_runs(tokenizer, tokenize_record(tokenizer, second)) == ["Q: 2+2?\n", "A: 4"]
