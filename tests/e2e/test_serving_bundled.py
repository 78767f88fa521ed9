"""End to end on the bundled SmolLM2-135M: a demo-sized LoRA adapter (r=16, all linear layers),
registered, promoted, served by `tunewise serve`'s app to the official client, answering greedily
token for token like transformers+peft, also when requests for it and the base share batches."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.serving.adapters import make_adapter_run, pass_gate
from tests.integration.serving.conftest import start_server
from tests.integration.serving.test_engine_behaviour import peft_greedy

pytestmark = pytest.mark.slow
PROMPTS = ["What is the capital of France?", "Give me two tips for writing clear emails."]


def test_bundled_model_with_a_registered_adapter(workspace, mlflow_template, bundled_model_dir, monkeypatch):
    import shutil

    from tunewise.registry import promote, register_run
    from tunewise.serve.config import load_serve_config
    from tunewise.server.serving_app import create_serving_app
    from tunewise.workspace import runs_dir

    monkeypatch.setenv("TUNEWISE_USER", "tester")
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_template, workspace / "mlflow.db")
    run = make_adapter_run(runs_dir(), "support-v1", bundled_model_dir, seed=3, r=16, noise=0.02)
    pass_gate(run, bundled_model_dir)
    register_run("support-v1", "support")
    promote("support", 1, "production")
    app = create_serving_app(load_serve_config(models=["smollm2-135m-instruct"]))
    url, server, thread = start_server(app)
    try:
        import openai

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, _strict_response_validation=True,
                               timeout=600)

        def ask(model_prompt):
            model, prompt = model_prompt
            answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                    max_tokens=16, temperature=0)
            return answer.choices[0].message.content, answer.usage.completion_tokens

        jobs = [("support", p) for p in PROMPTS] + [("smollm2-135m-instruct", p) for p in PROMPTS]
        with ThreadPoolExecutor(len(jobs)) as pool:
            got = list(pool.map(ask, jobs))
        adapter_ref = peft_greedy(bundled_model_dir, run / "artifact", PROMPTS, max_tokens=16)
        base_ref = peft_greedy(bundled_model_dir, None, PROMPTS, max_tokens=16)
        assert got == adapter_ref + base_ref
        assert got[:2] != got[2:]  # the adapter changes the answers
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        app.state.engine.close()
    assert os.environ["TUNEWISE_HOME"] == str(workspace)
