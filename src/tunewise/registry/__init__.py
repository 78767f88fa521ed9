"""Model registry on MLflow: versions with lineage and sha256, aliases staging/production, promotion policy.

    register_run(run, name) -> VersionInfo
    promote(name, version, to) -> event            # to: staging | production
    rollback(name) -> event
    load_version(name, version_or_alias, policy=None, merged=False) -> (model, tokenizer, info)
    fetch_version(name, version_or_alias) -> Path  # verified artifact folder
    list_models() -> [{"name", "aliases", "versions": [...]}]
Imports are lazy so `import tunewise.registry` does not pull in MLflow.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "register_run": "tunewise.registry.register",
    "lineage_tags": "tunewise.registry.register",
    "promote": "tunewise.registry.promotion",
    "rollback": "tunewise.registry.promotion",
    "history": "tunewise.registry.promotion",
    "load_version": "tunewise.registry.versions",
    "fetch_version": "tunewise.registry.versions",
    "get_version": "tunewise.registry.versions",
    "list_versions": "tunewise.registry.versions",
    "locate_version": "tunewise.registry.versions",
    "verify_files": "tunewise.registry.versions",
    "list_models": "tunewise.registry.versions",
    "VersionInfo": "tunewise.registry.versions",
    "RegistryError": "tunewise.registry.errors",
    "PromotionError": "tunewise.registry.errors",
    "IntegrityError": "tunewise.registry.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tunewise.registry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
