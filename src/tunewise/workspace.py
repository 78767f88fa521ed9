"""The workspace: one directory (TUNEWISE_HOME, default ./.tunewise) holding everything an installation keeps."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Root of the workspace; created on first use."""
    root = Path(os.environ.get("TUNEWISE_HOME", ".tunewise")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_cache_dir() -> Path:
    """Converted and downloaded base models; TUNEWISE_MODEL_CACHE shares one cache between workspaces."""
    override = os.environ.get("TUNEWISE_MODEL_CACHE")
    path = Path(override).expanduser().resolve() if override else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
