"""Adaptation methods. Each module in this package registers one method with `register_method`.

A method is a small record: its options (a pydantic class), how to wrap a base model for training
(`build`), and the defaults practice recommends. Nothing central is edited to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from tunewise.errors import SpecError


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    config_class: type[BaseModel]
    # build(model, cfg) -> the model to train (a peft model for adapter methods).
    build: Callable[[Any, Any], Any]
    default_learning_rate: float
    usual_learning_rate: tuple[float, float] | None = None
    learning_rate_reason: str = ""
    kind: Literal["sft", "preference", "rl"] = "sft"
    adapter: bool = True  # artifact is adapter-only (peft) rather than a full model
    # Prefix and prompt tuning prepend virtual tokens: packed position ids and the
    # labels-only output head do not apply to them.
    prepends_virtual_tokens: bool = False
    # quantization(cfg, compute_dtype) -> kwargs for from_pretrained (QLoRA's 4-bit base).
    quantization: Callable[[Any, Any], dict[str, Any]] | None = None
    # trainer(spec, run_dir) -> RunResult, for methods with their own trainer (alignment, RL);
    # None means the supervised TrainingSession in tunewise.train.session.
    trainer: Callable[[Any, Any], Any] | None = None
    # check_options(cfg) -> warnings about values outside the usual range, with reasons.
    check_options: Callable[[Any], list[str]] = field(default=lambda cfg: [])
    # Why the evaluation after training does not apply to this method's artifact (None: it does).
    eval_skip_reason: str | None = None
    # Trains as several processes (resources.nproc_per_node or nnodes above 1); False: one process only.
    multi_process: bool = True


_REGISTRY: dict[str, Method] = {}
_LOADED = False


def register_method(method: Method) -> Method:
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
        raise ValueError(f"method {method.name!r} is registered twice")
    _REGISTRY[method.name] = method
    return method


def _load_builtin_methods() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def all_methods() -> list[Method]:
    _load_builtin_methods()
    return sorted(_REGISTRY.values(), key=lambda m: m.name)


def get_method(name: str) -> Method:
    _load_builtin_methods()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpecError(f"method.name: unknown method {name!r}", hint=f"known methods: {known}") from None
