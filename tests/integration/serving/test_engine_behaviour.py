"""Batching, parity with transformers+peft, verified loading, merged mode, the adapter cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

PROMPTS = ["hello there", "What is the capital of France?", "Write one word.", "Tell me about cats and their habits."]


def greedy(client, model, prompt, max_tokens=10):
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0)
    return answer.choices[0].message.content, answer.usage.completion_tokens, answer.model


def peft_greedy(base_dir, adapter_dir, prompts, max_tokens=10):
    """What a user would write first: transformers + peft `generate`, greedy, one prompt at a time."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    out = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            generated = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        new = generated[0, ids["input_ids"].shape[1]:].tolist()
        if new and new[-1] == tokenizer.eos_token_id:
            new = new[:-1]
        out.append((tokenizer.decode(new, skip_special_tokens=True), len(new)))
    return out


def test_greedy_answers_equal_transformers_peft_generate_in_a_mixed_batch(served):
    """Every prompt for two adapters and the base, sent at once so they share batches."""
    runs, prompts = served.home / "runs", PROMPTS[1:]
    expected = {("tiny", p): r for p, r in zip(prompts, peft_greedy(served.base, None, prompts))}
    for name in ("ad0", "ad1"):
        expected.update({(name, p): r for p, r in zip(prompts, peft_greedy(served.base, runs / name / "artifact",
                                                                          prompts))})
    client = served.client()
    with ThreadPoolExecutor(len(expected)) as pool:
        got = dict(zip(expected, pool.map(lambda key: greedy(client, *key)[:2], expected)))
    assert got == expected


def test_32_concurrent_requests_over_4_adapters_and_the_base(served):
    client = served.client()
    keys = [(model, PROMPTS[i % len(PROMPTS)]) for i in range(32)
            for model in [("tiny", "ad0", "ad1", "ad2", "ad3")[i % 5]]]
    alone = {key: greedy(client, *key, max_tokens=6) for key in set(keys)}
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(lambda key: greedy(client, *key, max_tokens=6), keys))
    assert together == [alone[key] for key in keys]
    assert {t[2] for t in together} == {"tiny", "ad0", "ad1", "ad2", "ad3"}


def test_merged_model_serves_beside_unmerged_ones_and_answers_like_its_adapter(served):
    runs = served.home / "runs"
    reference = peft_greedy(served.base, runs / "ad3" / "artifact", PROMPTS[:2])
    client = served.client()
    assert [greedy(client, "ad3", p)[:2] for p in PROMPTS[:2]] == reference
    greedy(client, "ad0", "hi")
    assert served.engine.backend.tier(served.engine.names.resolve("ad3")) == "merged"
    assert served.engine.backend.tier(served.engine.names.resolve("ad0")) in ("model", "host", "disk")


def test_a_tampered_production_artifact_is_refused_while_others_keep_serving(served, in_server_home):
    from tunewise.registry import get_version
    from tunewise.registry.versions import _local_source_dir

    info = get_version("fragile", "production")
    folder = _local_source_dir(served.engine.names.registry_client(), info)
    (folder / "adapter_config.json").write_text((folder / "adapter_config.json").read_text() + "\n")
    client = served.client()
    for _ in range(2):  # refused every time, not only on the first load
        with pytest.raises(openai.InternalServerError) as refused:
            greedy(client, "fragile", "hello")
        assert refused.value.status_code == 503 and refused.value.body["code"] == "model_refused"
        assert "changed after registration" in refused.value.body["message"]
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert greedy(client, "bot", "hello")[2] == "bot:1" and greedy(client, "ad0", "hi")[2] == "ad0"


def test_adapter_cache_keeps_its_byte_budget_with_lru_pins_and_prefetch(served):
    engine = served.engine
    loaded = engine.backend.loaded_for(engine.names.resolve("tiny"), "tiny")
    cache = loaded.adapters
    models = [engine.names.resolve(name) for name in ("ad0", "ad1", "ad2", "bot:2")]
    one = None
    for model in models:
        engine.backend.prefetch(model, "tiny").result(timeout=60)
        one = one or cache._model[model.cache_key].adapter.nbytes
    old_budget = cache.model_budget_bytes
    try:
        engine.backend.prefetch(models[0], "tiny", pin=True).result(timeout=60)
        cache.set_budgets(model_bytes=2 * one)
        for model in models[1:]:
            engine.backend.prefetch(model, "tiny").result(timeout=60)
        stats = cache.stats()
        assert stats["model"]["bytes"] <= 2 * one and stats["model"]["loaded"] == 2
        assert cache.tier(models[0].cache_key) == "model"  # pinned: survives the others' loads
        assert cache.tier(models[1].cache_key) == "host"  # evicted to host memory: a warm load next time
        assert cache.tier(models[3].cache_key) == "model"  # the most recent one
        warm = engine.backend.prefetch(models[1], "tiny")
        warm.result(timeout=60)
        assert cache.load_log[-1]["from"] == "host"
    finally:
        cache.unpin(models[0])
        cache.set_budgets(model_bytes=old_budget)


def test_api_key_is_required_when_configured(served):
    from tests.integration.serving.conftest import start_server
    from tunewise.server.serving_app import create_serving_app

    app = create_serving_app(served.engine.config, api_key="s3cret", engine=served.engine)
    url, server, thread = start_server(app)
    try:
        import openai as oa

        with pytest.raises(oa.AuthenticationError):
            oa.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        ok = oa.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0, _strict_response_validation=True)
        assert any(m.id == "tiny" for m in ok.models.list().data)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
