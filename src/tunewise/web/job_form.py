"""The new-job form and the job request (`POST /api/jobs` body), both ways.

Fields are named by their dotted spec path (`spec.train.epochs`), so a form value is a spec
override as `tunewise train` takes it; labels, defaults and help come from the spec's JSON schema
and the method catalogue the API serves. Spec fields the form does not show travel in a hidden
`extra` field (JSON), so a loaded YAML spec round-trips whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tunewise.spec import apply_overrides

GATE_ROWS = 3
REQUEST_FIELDS = ("model", "pool", "priority", "suffix")
# (spec section, field, schema definition): the hyperparameters the form shows for every method.
FORM_FIELDS = (
    ("train", "epochs", "TrainSpec"), ("train", "max_steps", "TrainSpec"), ("train", "learning_rate", "TrainSpec"),
    ("train", "micro_batch_size", "TrainSpec"), ("train", "gradient_accumulation", "TrainSpec"),
    ("data", "max_length", "DataSpec"), ("data", "val_fraction", "DataSpec"),
    ("checkpoint", "every_steps", "CheckpointSpec"),
)
EVAL_FIELDS = (("eval", "enabled", "EvalSpec"), ("eval", "max_examples", "EvalSpec"),
               ("eval", "max_new_tokens", "EvalSpec"), ("eval.forgetting", "enabled", "ForgettingSpec"),
               ("eval.forgetting", "max_paragraphs", "ForgettingSpec"),
               ("eval.forgetting", "max_questions", "ForgettingSpec"))
FILE_FIELDS = ("spec.data.train", "spec.data.validation")
# Where the schema's own title is ambiguous on one form (two fields both titled "Enabled").
LABELS = {"spec.eval.enabled": "Evaluate after training", "spec.eval.forgetting.enabled": "Forgetting check",
          "spec.eval.forgetting.max_paragraphs": "Forgetting: paragraphs",
          "spec.eval.forgetting.max_questions": "Forgetting: questions",
          "spec.checkpoint.every_steps": "Checkpoint every N steps"}


def field_specs(schema: dict[str, Any], fields=FORM_FIELDS) -> list[dict[str, Any]]:
    """Form inputs for `fields`: name, label, default, help and type from the spec's JSON schema."""
    out = []
    for section, name, definition in fields:
        prop = schema.get("$defs", {}).get(definition, {}).get("properties", {}).get(name, {})
        kinds = [prop.get("type")] + [p.get("type") for p in prop.get("anyOf", [])]
        path = f"spec.{section}.{name}"
        out.append({"name": path, "label": LABELS.get(path) or prop.get("title") or name.replace("_", " "),
                    "default": prop.get("default"), "help": prop.get("description", ""),
                    "boolean": "boolean" in kinds})
    return out


def method_fields(method: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Inputs for one method's own options (its per-method defaults as placeholders)."""
    if not method:
        return []
    return [{"name": f"spec.method.{key}", "label": key.replace("_", " "), "default": option.get("default"),
             "help": option.get("description", ""), "boolean": option.get("type") == "boolean"}
            for key, option in method["options"].items()]


def request_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The job request a filled-in form describes (empty fields are left to the server's defaults)."""
    try:
        extra = json.loads(form.get("extra") or "{}")
    except ValueError:
        extra = {}
    overrides = [f"{key[len('spec.'):]}={value.strip()}" for key, value in form.items()
                 if key.startswith("spec.") and isinstance(value, str) and value.strip()]
    spec = apply_overrides(extra if isinstance(extra, dict) else {}, overrides)
    gate = {}
    for i in range(GATE_ROWS):
        key, threshold = (form.get(f"gate.{i}.key") or "").strip(), (form.get(f"gate.{i}.threshold") or "").strip()
        if key and threshold:
            gate[key] = threshold
    if gate:
        spec.setdefault("eval", {})["gate"] = gate
    body = {k: form[k].strip() for k in REQUEST_FIELDS if (form.get(k) or "").strip()}
    return {**body, "spec": spec}


def form_from_request(request: Mapping[str, Any], shown: set[str]) -> dict[str, str]:
    """Form values for a request (e.g. a loaded YAML spec); fields not in `shown` go to `extra`."""
    values = {k: str(request[k]) for k in REQUEST_FIELDS if request.get(k) is not None}
    rest = copy.deepcopy(dict(request.get("spec") or {}))
    gate = (rest.get("eval") or {}).pop("gate", None) or {}
    for i, (key, threshold) in enumerate(list(gate.items())[:GATE_ROWS]):
        values[f"gate.{i}.key"], values[f"gate.{i}.threshold"] = key, str(threshold)
    if isinstance(rest.get("method"), str):
        rest["method"] = {"name": rest["method"]}
    for name in sorted(shown):
        path = name[len("spec."):].split(".")
        node = rest
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and not isinstance(node[path[-1]], (dict, list)):
            value = node.pop(path[-1])
            values[name] = str(value).lower() if isinstance(value, bool) else str(value)
    _prune_empty(rest)
    if rest:
        values["extra"] = json.dumps(rest, sort_keys=True)
    return values


def _prune_empty(tree: dict[str, Any]) -> None:
    for key in list(tree):
        if isinstance(tree[key], dict):
            _prune_empty(tree[key])
            if not tree[key]:
                del tree[key]


def query_of(values: Mapping[str, str]) -> str:
    return urlencode({k: v for k, v in values.items() if v not in (None, "") and k != "csrf_token"})
