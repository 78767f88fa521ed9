"""`GET /v1/models` on the wire: OpenAI's model object (id, object, created, owned_by), plus what a
server of many adapters needs to say (vLLM's `parent` and `root`; our `version`, `loaded`, `tier`)."""

from __future__ import annotations

from typing import Any


def model_list(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": entries}
