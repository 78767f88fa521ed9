"""`tunewise serve`'s application: the inference routes over one Engine, OpenAI-style errors, a body
size limit, and an optional API key (`Authorization: Bearer KEY`, compared in constant time)."""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from tunewise.openai_api.errors import unauthorized
from tunewise.server.errors import BodySizeLimit, install_error_handlers
from tunewise.server.inference import build_inference_router
from tunewise.serve.config import MIB, ServeConfig


def create_serving_app(config: ServeConfig, *, api_key: str | None = None, engine: Any = None) -> FastAPI:
    """The app for `config`. An Engine is built from it unless one is given; the app closes the engine it
    built when it shuts down, and leaves a given one to its owner."""
    from tunewise.serve.engine import Engine

    owns_engine = engine is None
    engine = engine or Engine(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        if owns_engine:
            engine.close()

    app = FastAPI(title="tunewise serve", version="1", lifespan=lifespan)
    app.state.engine = engine
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_mib * MIB)
    if api_key:
        expected = f"Bearer {api_key}".encode()

        @app.middleware("http")
        async def require_key(request: Request, call_next: Any) -> Any:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                from tunewise.server.errors import error_response

                return error_response(unauthorized())
            return await call_next(request)

    app.include_router(build_inference_router(engine))
    return app
