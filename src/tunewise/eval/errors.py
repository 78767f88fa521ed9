"""Errors of the evaluation stage, printed by the CLI without a traceback."""

from __future__ import annotations

from tunewise.errors import TunewiseError


class EvalError(TunewiseError):
    """A run cannot be evaluated (no artifact, no held-out data, unreachable judge...)."""
