"""The official openai client against `tunewise serve`'s app on a real port: shapes, parameters, errors."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

HELLO = [{"role": "user", "content": "hello there"}]


def ask(client, model, messages=HELLO, **kwargs):
    kwargs.setdefault("max_tokens", 8)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(model=model, messages=messages, **kwargs)


def test_chat_completion_names_the_served_version(served):
    raw = served.client().chat.completions.with_raw_response.create(
        model="bot", messages=HELLO, max_tokens=6, temperature=0)
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "bot:1"
    assert raw.headers["x-tunewise-model-version"] == "1"
    assert answer.usage.completion_tokens == 6 and answer.usage.prompt_tokens > 5
    assert answer.choices[0].finish_reason == "length" and answer.choices[0].message.role == "assistant"
    assert ask(served.client(), "bot@production").model == "bot:1"
    assert ask(served.client(), "bot:2").model == "bot:2"


def test_adapters_on_one_base_answer_differently(served):
    client = served.client()
    answers = {name: ask(client, name, max_tokens=10).choices[0].message.content
               for name in ("tiny", "ad0", "ad1", "ad2")}
    assert len(set(answers.values())) == 4, answers
    assert len(served.engine.backend.models()) == 2  # one base copy, plus the merged ad3


def test_streaming_matches_the_whole_answer_and_reports_usage(served):
    client = served.client()
    whole = ask(client, "ad1", max_tokens=12).choices[0].message.content
    chunks = list(ask(client, "ad1", max_tokens=12, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_n_choices_with_logprobs_and_seeded_sampling(served):
    client = served.client()
    answer = ask(client, "ad0", n=3, temperature=1.0, seed=7, logprobs=True, top_logprobs=3, max_tokens=5)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    first = answer.choices[0].logprobs.content
    assert len(first) == 5 and all(len(t.top_logprobs) == 3 for t in first)
    assert all(t.logprob <= 0 and t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob for t in first)
    again = ask(client, "ad0", n=3, temperature=1.0, seed=7, max_tokens=5)
    assert [c.message.content for c in again.choices] == [c.message.content for c in answer.choices]
    assert answer.usage.completion_tokens == 15


def test_text_completion_with_stop_and_logprobs(served):
    client = served.client()
    full = client.completions.create(model="ad2", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert full.object == "text_completion" and full.choices[0].finish_reason == "length"
    cut_at = full.choices[0].text[3:6]
    stopped = client.completions.create(model="ad2", prompt="Once upon a time", max_tokens=8, temperature=0,
                                        stop=[cut_at], logprobs=2)
    assert stopped.choices[0].text == full.choices[0].text[:full.choices[0].text.index(cut_at)]
    assert stopped.choices[0].finish_reason == "stop"
    assert len(stopped.choices[0].logprobs.top_logprobs[0]) == 2
    # Streamed text completions carry finish_reason null until the last chunk, as OpenAI's do; the
    # client's Completion type declares it non-null, so strict validation cannot apply to that stream.
    lenient = served.client(_strict_response_validation=False)
    streamed = "".join(c.choices[0].text for c in lenient.completions.create(
        model="ad2", prompt="Once upon a time", max_tokens=8, temperature=0, stream=True))
    assert streamed == full.choices[0].text


def test_json_schema_answers_parse_and_validate(served):
    import jsonschema

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                               "mood": {"type": "string", "enum": ["calm", "busy"]}},
              "required": ["ok", "mood"], "additionalProperties": False}
    client = served.client()
    for model, temperature in (("ad0", 0), ("ad1", 1.0), ("tiny", 0)):
        answer = ask(client, model, max_tokens=40, temperature=temperature, seed=1, response_format={
            "type": "json_schema", "json_schema": {"name": "status", "schema": schema, "strict": True}})
        jsonschema.validate(json.loads(answer.choices[0].message.content), schema)
    obj = ask(client, "ad2", max_tokens=60, response_format={"type": "json_object"})
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content), dict)


def test_errors_are_openai_bodies_and_the_server_keeps_serving(served):
    client = served.client()
    with pytest.raises(openai.NotFoundError) as missing:
        ask(client, "no-such-model")
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        ask(client, "bot:99")
    with pytest.raises(openai.BadRequestError) as bad:
        ask(client, "tiny", temperature=3.5)
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as too_long:
        ask(client, "tiny", max_tokens=5000)
    assert too_long.value.body["code"] == "context_length_exceeded" and "2048" in too_long.value.body["message"]
    with pytest.raises(openai.BadRequestError) as tools:
        ask(client, "tiny", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert tools.value.body["param"] == "tools"
    response = httpx.post(f"{served.url}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()
    assert ask(client, "tiny").choices[0].message.content is not None


def test_models_list_shows_parents_versions_and_what_is_loaded(served):
    ask(served.client(), "ad1")
    models = {m.id: m for m in served.client().models.list().data}
    assert {"tiny", "ad0", "ad1", "ad3", "bot:1", "bot:2", "bot@production", "ab-bot"} <= set(models)
    extra = models["bot:2"].model_extra
    assert extra["parent"] == "tiny" and extra["root"] == "tiny" and extra["version"] == "2"
    assert models["ad1"].model_extra["loaded"] is True and models["tiny"].model_extra["kind"] == "base"
    assert models["ad3"].model_extra["tier"] == "merged"
    assert served.client().models.retrieve("bot:1").id == "bot:1"
    with pytest.raises(openai.NotFoundError):
        served.client().models.retrieve("nothing-here")


def test_metrics_use_vllm_names_with_bounded_labels(served):
    ask(served.client(), "ad0")
    text = httpx.get(f"{served.url}/metrics").text
    for name in ("tunewise:num_requests_running", "tunewise:num_requests_waiting",
                 "tunewise:time_to_first_token_seconds_bucket", "tunewise:inter_token_latency_seconds_bucket",
                 "tunewise:e2e_request_latency_seconds_bucket", "tunewise:prompt_tokens_total",
                 "tunewise:generation_tokens_total", "tunewise:adapter_cache_bytes", "tunewise:adapter_loads_total",
                 "tunewise:adapter_load_seconds_bucket", "tunewise:adapter_cache_hits_total"):
        assert name in text, name
    assert 'tunewise:request_success_total{adapter="ad0",finished_reason="length",model="tiny"' in text
    metrics = served.engine.metrics
    labels = [metrics.labels_for("tiny", f"adapter-{i}", "1", "") for i in range(metrics.max_series + 5)]
    assert labels[-1]["adapter"] == "other" and len(metrics._seen) <= metrics.max_series + 1
