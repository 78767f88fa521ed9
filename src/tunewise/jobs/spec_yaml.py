"""A job request as YAML and back: what the portal's form downloads, and what it reads to prefill.

The YAML is the body of `POST /api/jobs` (model, priority, pool, suffix, spec). A bare job spec as
`tunewise train` takes it is read too: its `base_model` becomes `model` and its sections the spec.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from tunewise.jobs.native import NativeJobRequest
from tunewise.jobs.submit import SPEC_SECTIONS
from tunewise.openai_api.errors import bad_request
from tunewise.spec import problem_lines

HEADER = ("# A tunewise job: the body of POST /api/jobs. Data files are file ids of your team.\n"
          "# Submit it with the portal (New job > Load a spec) or the API.\n")
REQUEST_KEYS = tuple(NativeJobRequest.model_fields)


def request_to_yaml(request: NativeJobRequest) -> str:
    body = request.model_dump(mode="json", exclude_none=True)
    ordered = {key: body[key] for key in REQUEST_KEYS if key in body and key != "spec"}
    ordered["spec"] = body.get("spec", {})
    return HEADER + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


def yaml_to_request(text: str, *, source: str = "yaml") -> NativeJobRequest:
    """The request a YAML document describes; 400 naming the line (syntax) or the field (content)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise bad_request(f"{where}: not valid YAML ({getattr(err, 'problem', None) or 'unreadable'})",
                          param="yaml") from None
    except RecursionError:
        raise bad_request(f"{source}: nested too deeply to be a job spec", param="yaml") from None
    if not isinstance(raw, dict):
        raise bad_request(f"{source}: a job spec is a mapping of sections", param="yaml")
    if "spec" not in raw:
        raw = _from_bare_spec(raw, source)
    try:
        return NativeJobRequest.model_validate(raw)
    except ValidationError as err:
        raise bad_request(f"{source}: " + "; ".join(problem_lines(err)), param="yaml") from None


def _from_bare_spec(raw: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = [k for k in raw if k not in (*SPEC_SECTIONS, "name", "base_model", *REQUEST_KEYS)]
    if unknown:
        raise bad_request(f"{source}: unknown section {unknown[0]!r}; a job spec has "
                          f"{', '.join(SPEC_SECTIONS)} (and base_model)", param="yaml")
    request = {k: raw[k] for k in REQUEST_KEYS if k in raw and k != "spec"}
    if "base_model" in raw:
        request["model"] = raw["base_model"]
    request["spec"] = {k: raw[k] for k in SPEC_SECTIONS if k in raw}
    return request
