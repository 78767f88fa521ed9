"""Run by the interpreter of a vLLM environment (see test_vllm_backend.py): `tunewise serve`'s app with
`backend: vllm` over a tiny model and two adapters, driven over HTTP; writes its results as JSON to argv[2]."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time


def main() -> None:
    import httpx
    import uvicorn

    from tunewise.server.serving_app import create_serving_app
    from tunewise.serve.config import load_serve_config

    base = sys.argv[1]
    config = load_serve_config(models=[f"tiny={base}"], backend="vllm", registry=False, max_model_len=512,
                               routes={"pair": {"variants": [{"model": "ad0", "weight": 1}, {"model": "ad1", "weight": 1}]}})
    app = create_serving_app(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url, client, out = f"http://127.0.0.1:{port}", httpx.Client(timeout=900), {}
    hello = [{"role": "user", "content": "hello there"}]
    for model in ("tiny", "ad0", "ad1", "pair"):
        reply = client.post(f"{url}/v1/chat/completions", json={"model": model, "messages": hello, "max_tokens": 6,
                                                                "temperature": 0, "user": "u1"})
        body = reply.json()
        out[model] = {"status": reply.status_code, "model": body.get("model"),
                      "text": body["choices"][0]["message"]["content"] if reply.status_code == 200 else body,
                      "variant": reply.headers.get("x-tunewise-variant")}
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}
    reply = client.post(f"{url}/v1/chat/completions", json={"model": "ad0", "messages": hello, "max_tokens": 20,
                        "temperature": 0, "response_format": {"type": "json_schema",
                                                              "json_schema": {"name": "x", "schema": schema}}})
    out["json"] = reply.json()["choices"][0]["message"]["content"]
    out["json_finish"] = reply.json()["choices"][0]["finish_reason"]
    out["unknown"] = client.post(f"{url}/v1/chat/completions", json={"model": "nope", "messages": hello}).status_code
    out["metrics"] = "tunewise:request_success_total" in client.get(f"{url}/metrics").text
    with open(sys.argv[2], "w") as handle:  # a file, not stdout: vLLM's helper processes outlive this one
        handle.write(json.dumps(out))
    server.should_exit = True
    os._exit(0)  # vLLM's engine keeps threads that would hold the interpreter


if __name__ == "__main__":
    main()
