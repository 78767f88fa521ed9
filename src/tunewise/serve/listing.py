"""`GET /v1/models`: base models, merged models, A/B routes, registered versions and runs, each with
its parent (the base it sits on), its registry version, and where it is now (loaded or not)."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("tunewise.serve")


def _entry(id: str, *, parent: str | None, root: str, kind: str, version: str | None = None,
           tier: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "object": "model", "created": int(time.time()), "owned_by": extra.pop("owned_by", "tunewise"),
            "parent": parent, "root": root, "kind": kind, "version": version,
            "loaded": tier in ("model", "merged", "loaded"), "tier": tier, **extra}


def list_models(engine: Any) -> list[dict[str, Any]]:
    from tunewise.serve.errors import ServeError

    out: list[dict[str, Any]] = []
    for name, path in engine.names.bases.items():
        model = engine.names.resolve(name)
        out.append(_entry(name, parent=None, root=name, kind="base", tier=engine.backend.tier(model)))
    for route in list(engine.router.routes.values()):
        out.append(_entry(route.name, parent=None, root=route.name, kind="route",
                          variants=[{"model": v.model, "weight": v.weight} for v in route.variants],
                          shadow=route.shadow))
    seen = {e["id"] for e in out}
    for id in _registry_ids(engine) + _run_ids(engine):
        if id in seen:
            continue
        seen.add(id)
        try:
            model = engine.names.resolve(id)
        except ServeError:
            continue
        base = engine.base_label(model)
        out.append(_entry(id, parent=base if model.is_adapter else None, root=base, kind=model.kind,
                          version=model.version, tier=engine.backend.tier(model), owned_by=model.owner or "tunewise"))
    return out


def _registry_ids(engine: Any) -> list[str]:
    if not engine.names.use_registry:
        return []
    try:
        from tunewise.registry import list_models as registry_models

        ids = []
        for model in registry_models(engine.names.registry_client()):
            ids += [f"{model['name']}:{v['version']}" for v in model["versions"]]
            ids += [f"{model['name']}@{alias}" for alias in sorted(model["aliases"])]
        return ids
    except Exception:  # no registry reachable: list what else there is
        log.warning("the model registry could not be listed", exc_info=True)
        return []


def _run_ids(engine: Any) -> list[str]:
    if not engine.names.use_runs:
        return []
    from tunewise.models.artifact import ARTIFACT_INFO

    return sorted(p.parent.parent.name for p in engine.names.runs_root.glob(f"*/artifact/{ARTIFACT_INFO}"))
