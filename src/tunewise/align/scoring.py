"""User scoring functions, named `module:function` or `path/to/file.py:function`.

One signature everywhere (GRPO rewards, AI-feedback judging, win-rate):

    def score(prompt: str, answer: str) -> float      # higher is better (True/False count as 1/0)

`prompt` is the text of the last user turn. Such a function checks behaviour a rule can decide
(length, format, a keyword, a unit test) without any model.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunewise.errors import SpecError

ScoreFn = Callable[[str, str], float]


def load_score_function(name: str, *, field: str = "--judge-fn") -> ScoreFn:
    """Import the function `name` points to; SpecError naming `field` if it cannot be used."""
    module_name, sep, attr = name.rpartition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{field}: {name!r} is not of the form module:function",
                        hint="e.g. mypackage.rules:short_answer or ./rules.py:short_answer")
    module = _import(module_name, field)
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise SpecError(f"{field}: {module_name} has no function {attr!r}")
    try:
        inspect.signature(fn).bind("prompt", "answer")
    except TypeError:
        raise SpecError(f"{field}: {name} must take (prompt, answer) and return a number") from None
    except ValueError:
        pass  # builtins without a signature: trust them
    return fn


def _import(module_name: str, field: str) -> Any:
    path = Path(module_name)
    if module_name.endswith(".py") or path.is_file():
        if not path.is_file():
            raise SpecError(f"{field}: file {module_name} not found")
        spec = importlib.util.spec_from_file_location(f"tunewise_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(f"{field}: cannot import {module_name} ({err})",
                        hint="the module must be importable (on PYTHONPATH), or give a file path like ./rules.py:fn") from None


def last_user_text(prompt: list[dict[str, str]] | str) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m["role"] == "user"]
    return users[-1] if users else ""


def call_score(fn: ScoreFn, prompt: list[dict[str, str]] | str, answer: str, name: str = "") -> float:
    """fn(prompt text, answer) as a float; a non-number is an error naming the function."""
    value = fn(last_user_text(prompt), answer)
    if not isinstance(value, (int, float)):  # bools pass: a rule may answer True/False
        raise SpecError(f"scoring function {name or getattr(fn, '__name__', fn)} returned {value!r}, not a number")
    return float(value)
