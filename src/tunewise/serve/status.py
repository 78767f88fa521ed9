"""What an engine holds now, for an operator: loaded models with their queues, and each base model's
adapter cache (what sits in the model and host tiers, budgets, what is loading), plus the A/B routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _label(key: str, root: Path | None) -> str:
    """An adapter's cache key (its directory) shown relative to the workspace when it lies inside."""
    if root is None:
        return key
    try:
        return str(Path(key).relative_to(root))
    except ValueError:
        return key


def engine_status(engine: Any, *, root: Path | None = None) -> dict[str, Any]:
    models = []
    for loaded in getattr(engine.backend, "models", lambda: [])():
        running, waiting = loaded.batcher.counts()
        entry: dict[str, Any] = {"model": loaded.label, "running": running, "waiting": waiting,
                                 "max_length": loaded.max_length, "adapters": None}
        if loaded.adapters is not None:
            contents = loaded.adapters.contents()
            for tier in ("model", "host"):
                for item in contents[tier]:
                    item["key"] = _label(item["key"], root)
            contents["loading"] = [_label(k, root) for k in contents["loading"]]
            entry["adapters"] = {**loaded.adapters.stats(), "contents": contents}
        models.append(entry)
    return {"backend": getattr(engine.backend, "name", type(engine.backend).__name__), "models": models,
            "routes": [route.to_json() for route in list(engine.router.routes.values())]}
