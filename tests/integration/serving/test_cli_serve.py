"""`tunewise serve` as a user starts it (a subprocess, YAML config plus flags), and `tunewise generate`
with registered names."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import openai

from tests.integration.serving.conftest import free_port


def test_tunewise_serve_command_answers_over_http(served, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(f"models: ['tiny={served.base}']\nroutes:\n  pair:\n    variants:\n"
                      "      - {model: ad0, weight: 1}\n      - {model: ad1, weight: 1}\nresolve_ttl_s: 0\n")
    port = free_port()
    env = {**os.environ, "TUNEWISE_HOME": str(served.home)}
    proc = subprocess.Popen([sys.executable, "-m", "tunewise", "serve", "--config", str(config), "--port", str(port),
                             "--api-key", "k1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"authorization": "Bearer k1"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k1", max_retries=0,
                               _strict_response_validation=True)
        answer = client.chat.completions.create(model="pair", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=3, temperature=0, user="u7")
        assert answer.model in ("ad0", "ad1") and answer.usage.completion_tokens == 3
        assert client.chat.completions.create(model="bot:2", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=2).model == "bot:2"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_generate_accepts_registered_names(served, in_server_home):
    from typer.testing import CliRunner

    from tunewise.cli import app

    runner = CliRunner()
    by_version = runner.invoke(app, ["generate", "bot:2", "--prompt", "hello there", "--max-new-tokens", "6"])
    by_alias = runner.invoke(app, ["generate", "bot@production", "--prompt", "hello there", "--max-new-tokens", "6"])
    assert by_version.exit_code == 0 and by_alias.exit_code == 0, by_version.output + by_alias.output
    client = served.client()
    expected = client.chat.completions.create(model="bot:2", messages=[{"role": "user", "content": "hello there"}],
                                              max_tokens=6, temperature=0).choices[0].message.content
    assert by_version.output.rstrip().endswith(expected.strip())  # (progress bars from loading come first)
    missing = runner.invoke(app, ["generate", "bot:42", "--prompt", "hi"])
    assert missing.exit_code != 0
