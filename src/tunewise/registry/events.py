"""Who did what to a registered model, and when: MLflow tags on the registered model (the record a
remote server shares) mirrored to `$TUNEWISE_HOME/registry/history/<name>.json` for people and tools."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

EVENT_PREFIX = "tunewise.event."


def history_file(name: str) -> Path:
    from tunewise.workspace import home

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return home() / "registry" / "history" / f"{safe}.json"


def record_event(client: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Add who (TUNEWISE_USER or login) and when, store it as a registered-model tag, mirror it to JSON."""
    from tunewise.eval.report import write_json
    from tunewise.registry.versions import current_user, now_iso

    event = {"who": current_user(), "when": now_iso(), **event}
    key = f"{EVENT_PREFIX}{time.time_ns():020d}"  # nanosecond keys sort in time order and do not collide
    client.set_registered_model_tag(name, key, json.dumps(event, sort_keys=True))
    path = history_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    events = read_history(client, name)
    write_json(path, events)
    return event


def read_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every recorded event for `name`, oldest first."""
    from tunewise.registry.versions import registered_model

    tags = registered_model(client, name).tags or {}
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(EVENT_PREFIX))]
