"""Checking Kubernetes objects as a cluster would: core kinds against Kubernetes' own schemas
(kubernetes-validate), custom resources field by field against their projects' published APIs
(tests/fixtures/k8s/custom_resources.yaml). Used by the render tests and by the fake kubectl."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "k8s"
CUSTOM = yaml.safe_load((FIXTURES / "custom_resources.yaml").read_text())
K8S_VERSION = "1.33.0"
SCHEMAS = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"


def validate_object(obj: dict) -> None:
    """Raise (AssertionError or a validation error) unless a cluster with these APIs would accept `obj`."""
    if obj["kind"] in CUSTOM:
        check_custom_resource(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def validate_core(value, schema: str) -> None:
    """Validate `value` against kubernetes-validate's schema file `schema` (e.g. envvar-v1)."""
    if schema == "resourcelist":
        value, schema = {"requests": value}, "resourcerequirements-v1"
    _validator(schema).validate(value)


@functools.cache
def _validator(schema: str):
    import jsonschema

    contents = schema_contents(f"{SCHEMAS}/{schema}.json", K8S_VERSION)
    registry = _definitions() @ (Resource.from_contents(contents) @ Registry())
    return jsonschema.validators.Draft202012Validator(contents, registry=registry)


@functools.cache
def _definitions() -> Resource:
    return Resource.from_contents(schema_contents(f"{SCHEMAS}/_definitions.json", K8S_VERSION))


def _leaves(value, path=""):
    """(path, value) of every field; list items as "[]"."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for item in value:
            yield from _leaves(item, f"{path}[]")
    else:
        yield path, value


_TYPES = {"string": str, "integer": int, "boolean": bool}


def check_custom_resource(obj: dict) -> None:
    api = CUSTOM[obj["kind"]]
    assert obj["apiVersion"] == api["apiVersion"], obj["kind"]
    fields = api["fields"]
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    checked_core: set[str] = set()
    for path, value in _leaves(body):
        known = _match(path, fields)
        assert known is not None, f"{obj['kind']}: {path} is not a field of {api['apiVersion']} ({api['source']})"
        pattern, kind = known
        if kind.startswith("core:"):
            if (pattern, id(value)) not in checked_core:
                checked_core.add((pattern, id(value)))
                _validate_core_at(body, pattern, kind.removeprefix("core:"))
            continue
        if kind == "object":
            assert value == {}, path
        elif kind == "[]string":
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), path
        elif kind == "map[string]string":
            assert all(isinstance(v, str) for v in value.values()), path
        else:
            assert type(value) is _TYPES[kind], f"{obj['kind']}: {path} = {value!r} is not {kind}"
    for required in api["required"]:
        assert list(_values_at(body, required)), f"{obj['kind']}: required {required} missing"


def _match(path: str, fields: dict) -> tuple[str, str] | None:
    """The fixture entry covering `path`: itself, or a core type (or empty object) holding it."""
    for pattern, kind in fields.items():
        regex = "^" + re.escape(pattern).replace(r"\[\]", r"\[\]").replace(r"\*", r"[^.\[]+")
        if re.match(regex + "$", path) or ((kind.startswith("core:") or kind == "object") and re.match(regex + r"(\.|\[\]|$)", path)):
            return pattern, kind
    return None


def _values_at(body, pattern: str):
    parts = re.findall(r"[^.\[\]]+|\[\]", pattern)
    nodes = [body]
    for part in parts:
        step = []
        for node in nodes:
            if part == "[]":
                step.extend(node if isinstance(node, list) else [])
            elif part == "*":
                step.extend(node.values() if isinstance(node, dict) else [])
            elif isinstance(node, dict) and part in node:
                step.append(node[part])
        nodes = step
    return nodes


def _validate_core_at(body, pattern: str, schema: str) -> None:
    many = schema.endswith("[]")
    for value in _values_at(body, pattern):
        for item in (value if many else [value]):
            validate_core(item, schema.removesuffix("[]"))
