"""An OpenAI fine-tuning request becomes a tunewise job spec.

`supervised` trains a LoRA-family adapter (the server's `supervised_method`), `dpo` runs DPO,
`reinforcement` runs GRPO with the grader as a scoring rule. The deprecated top-level
`hyperparameters` are taken as `method.supervised.hyperparameters`. `"auto"` values stay "auto"
in the job until it runs; then the values used are shown: epochs by OpenAI's rule from the number
of examples, the batch as the planner fitted it into memory, the method's default learning rate.
"""

from __future__ import annotations

import math
from typing import Any

from tunewise.openai_api.errors import bad_request
from tunewise.openai_api.fine_tuning import JobCreate

# OpenAI's default-epoch rule: about 3 epochs, raised for small sets and lowered for large ones
# so the examples trained on stay between these bounds.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_DEFAULT_EPOCHS = 25

OPENAI_METHODS = {"dpo": "dpo", "reinforcement": "grpo"}


def auto_epochs(n_examples: int) -> int:
    """OpenAI's documented default number of epochs for a training set of `n_examples`."""
    n = max(1, n_examples)
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n))
    if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(1, MAX_TARGET_EXAMPLES // n)
    return TARGET_EPOCHS


def method_of(request: JobCreate) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(OpenAI method type, its hyperparameters as given, the method object to echo back)."""
    method = request.method
    if method is None:
        hyper = request.hyperparameters.model_dump(exclude_none=True) if request.hyperparameters else {}
        return "supervised", hyper, {"type": "supervised", "supervised": {"hyperparameters": _echo(hyper)}}
    if request.hyperparameters is not None and method.type != "supervised":
        raise bad_request("hyperparameters: the deprecated top-level hyperparameters only apply to supervised "
                          f"jobs; give them in method.{method.type}.hyperparameters", param="hyperparameters")
    section = getattr(method, method.type)
    if method.type == "reinforcement" and section is None:
        raise bad_request("method.reinforcement: a reinforcement job needs a grader", param="method.reinforcement")
    hyper_model = section.hyperparameters if section is not None else None
    hyper = hyper_model.model_dump(exclude_none=True) if hyper_model else {}
    if method.type == "supervised" and request.hyperparameters is not None:
        hyper = {**request.hyperparameters.model_dump(exclude_none=True), **hyper}
    echo: dict[str, Any] = {"hyperparameters": _echo(hyper)}
    if method.type == "reinforcement":
        echo["grader"] = section.grader
    return method.type, hyper, {"type": method.type, method.type: echo}


def _echo(hyper: dict[str, Any]) -> dict[str, Any]:
    keys = ("batch_size", "learning_rate_multiplier", "n_epochs")
    return {**{k: "auto" for k in keys}, **hyper}


def training_overrides(method_type: str, hyper: dict[str, Any], *, n_examples: int,
                       default_lr: float) -> dict[str, Any]:
    """The `train` section the hyperparameters set ("auto" resolved where it can be before running)."""
    train: dict[str, Any] = {}
    epochs = hyper.get("n_epochs", "auto")
    train["epochs"] = auto_epochs(n_examples) if epochs == "auto" else _positive(epochs, "n_epochs", method_type)
    batch = hyper.get("batch_size", "auto")
    if batch != "auto":
        train["micro_batch_size"] = int(_positive(batch, "batch_size", method_type))
    multiplier = hyper.get("learning_rate_multiplier", "auto")
    if multiplier != "auto":
        train["learning_rate"] = default_lr * _positive(multiplier, "learning_rate_multiplier", method_type)
    return train


def method_options(method_type: str, hyper: dict[str, Any]) -> dict[str, Any]:
    """Method options the OpenAI hyperparameters carry (DPO's beta)."""
    if method_type == "dpo" and hyper.get("beta", "auto") != "auto":
        return {"beta": _positive(hyper["beta"], "beta", method_type)}
    return {}


def _positive(value: Any, name: str, method_type: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise bad_request(f"method.{method_type}.hyperparameters.{name}: a positive number or 'auto', got {value!r}",
                          param=f"method.{method_type}.hyperparameters.{name}")
    return value


def resolved_hyperparameters(spec: dict[str, Any], batch_plan: dict[str, Any] | None,
                             default_lr: float) -> dict[str, Any]:
    """The values a running job trains with, in OpenAI's three fields."""
    train = spec.get("train", {})
    if batch_plan:
        batch = int(batch_plan["micro_batch_size"]) * int(batch_plan["gradient_accumulation"])
    else:
        batch = int(train.get("micro_batch_size", 4)) * int(train.get("gradient_accumulation", 1))
    lr = train.get("learning_rate")
    epochs = train.get("epochs", 1)
    return {"batch_size": batch, "learning_rate_multiplier": round(lr / default_lr, 6) if lr else 1.0,
            "n_epochs": int(epochs) if float(epochs).is_integer() else epochs}
