"""One tiny-model server for the whole serving test package: real uvicorn on a free port, a real
MLflow registry (SQLite) with registered versions, runs with random LoRA adapters."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.serving.adapters import make_adapter_run, pass_gate, runfactory

ADAPTERS = ("ad0", "ad1", "ad2", "ad3")
AB_ROUTE = {"variants": [{"model": "bot:1", "weight": 70}, {"model": "bot:2", "weight": 30}],
            "shadow": "ad2", "shadow_fraction": 0.2}


@dataclass
class Served:
    url: str
    home: Path
    engine: Any
    base: Path
    server: Any

    def client(self, **kwargs: Any) -> Any:
        import openai

        options = {"api_key": "unused", "_strict_response_validation": True, "max_retries": 0, "timeout": 300, **kwargs}
        return openai.OpenAI(base_url=f"{self.url}/v1", **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(app: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


class _Env:
    """Set TUNEWISE_HOME for the duration of a package fixture (monkeypatch is function-scoped)."""

    def __init__(self, home: Path):
        self.home, self.before = home, os.environ.get("TUNEWISE_HOME")

    def __enter__(self) -> None:
        os.environ["TUNEWISE_HOME"] = str(self.home)

    def __exit__(self, *_: Any) -> None:
        if self.before is None:
            os.environ.pop("TUNEWISE_HOME", None)
        else:
            os.environ["TUNEWISE_HOME"] = self.before


def build_workspace(home: Path, base: Path, mlflow_template: Path) -> None:
    """Runs ad0..ad3; registered `bot` (versions 1 and 2, production 1) and `fragile` (production 1)."""
    from tunewise.registry import promote, register_run
    from tunewise.workspace import runs_dir

    factory = runfactory()
    factory.install_mlflow_store(mlflow_template, home)
    for seed, name in enumerate(ADAPTERS):
        make_adapter_run(runs_dir(), name, base, seed=seed)
    for seed, name in ((10, "bot-v1"), (11, "bot-v2"), (12, "fragile-v1")):
        run = make_adapter_run(runs_dir(), name, base, seed=seed)
        pass_gate(run, base)
    register_run("bot-v1", "bot")
    register_run("bot-v2", "bot")
    register_run("fragile-v1", "fragile")
    promote("bot", 1, "production")
    promote("fragile", 1, "production")


@pytest.fixture(scope="package")
def served(tmp_path_factory, tiny_model_dir, mlflow_template) -> Any:
    from tunewise.serve.config import load_serve_config
    from tunewise.server.serving_app import create_serving_app

    home = tmp_path_factory.mktemp("serving") / "home"
    home.mkdir()
    with _Env(home):
        build_workspace(home, tiny_model_dir, mlflow_template)
        config = load_serve_config(models=[f"tiny={tiny_model_dir}"], merge=["ad3"],
                                   routes={"ab-bot": AB_ROUTE}, resolve_ttl_s=0.5)
        app = create_serving_app(config)
        url, server, thread = start_server(app)
    yield Served(url, home, app.state.engine, tiny_model_dir, server)
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def in_server_home(served, monkeypatch) -> Path:
    """Registry calls made by the test act on the server's workspace."""
    monkeypatch.setenv("TUNEWISE_HOME", str(served.home))
    return served.home
