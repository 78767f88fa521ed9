"""User-facing errors: each carries a message that names what is wrong and where, never a traceback."""

from __future__ import annotations


class TunewiseError(Exception):
    """An error the user can fix. The CLI prints `str(err)` and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class SpecError(TunewiseError):
    """A job spec or a command-line override is invalid (names the field)."""


class DataError(TunewiseError):
    """A dataset cannot be used (names file:line and field)."""


class ModelError(TunewiseError):
    """A base model cannot be resolved or loaded."""


class CheckpointError(TunewiseError):
    """A checkpoint is missing, incomplete or corrupt."""
