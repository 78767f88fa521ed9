"""Errors the serving engine raises; the HTTP layer maps each to an OpenAI-style status and body.

They are `TunewiseError`s, so `tunewise generate` and other command-line users print them in one
line like every other user error.
"""

from __future__ import annotations

from tunewise.errors import TunewiseError


class ServeError(TunewiseError):
    """Base of the serving errors; `status` is the HTTP status the server answers with."""

    status = 400
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.param = param


class UnknownModel(ServeError):
    """The request's `model` names nothing this server serves."""

    status = 404
    code = "model_not_found"


class InvalidRequest(ServeError):
    """A parameter is out of range or malformed; `param` names it."""

    status = 400
    code = "invalid_value"


class PromptTooLong(ServeError):
    """The prompt (plus the tokens asked for) does not fit the model's context."""

    status = 400
    code = "context_length_exceeded"


class ModelRefused(ServeError):
    """A model exists but cannot be loaded: changed files (sha256), an adapter kind the engine cannot
    batch, a broken artifact. Answered with 503 and no retry: retrying will not change the files."""

    status = 503
    code = "model_refused"


class EngineStopped(ServeError):
    """The engine is shutting down and takes no new requests."""

    status = 503
    code = "engine_stopped"
