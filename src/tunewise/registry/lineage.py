"""Content hashes that tie a model version to what produced it: artifact files, base model, data, spec."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def file_manifest(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} for every file under `folder`, sorted by path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def manifest_digest(manifest: dict[str, str]) -> str:
    """One sha256 over a manifest: changes when any file is added, removed, renamed or edited."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def tree_digest(folder: Path, *, cache_file: Path | None = None) -> str:
    """manifest_digest of a folder; file hashes are cached by (path, size, mtime) when cache_file is given,
    because a base model is hundreds of megabytes and rarely changes."""
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except json.JSONDecodeError:
            cache = {}
    manifest: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in cache:
            cache[key] = sha256_file(path)
        manifest[path.relative_to(folder).as_posix()] = cache[key]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    return manifest_digest(manifest)


def dataset_files(spec: dict[str, Any]) -> dict[str, Path]:
    """The local data files a spec names: data.train, data.validation, data.mix.path."""
    data = spec.get("data") or {}
    named = {"train": data.get("train"), "validation": data.get("validation"),
             "mix": (data.get("mix") or {}).get("path")}
    return {role: Path(value) for role, value in named.items()
            if isinstance(value, str) and "://" not in value and Path(value).is_file()}


def dataset_digest(run_dir: Path, spec: dict[str, Any]) -> str | None:
    """sha256 over the data files the spec names (train, validation, mix), by role and content.

    When they are no longer on disk, the normalized held-out records the run kept (<run>/data/)
    stand in, then any hash the data report carries; None when nothing is left to hash.
    """
    files = dataset_files(spec)
    if files:
        manifest = {role: sha256_file(path) for role, path in sorted(files.items())}
        return manifest_digest(manifest)
    data = run_dir / "data"
    if data.is_dir() and any(p.is_file() for p in data.rglob("*")):
        return tree_digest(data)
    report = run_dir / "data_report.json"
    if report.is_file():
        loaded = json.loads(report.read_text())
        for key in ("sha256", "content_hash", "dataset_sha256"):
            if isinstance(loaded.get(key), str):
                return loaded[key]
    return None


def spec_digest(spec: dict[str, Any]) -> str | None:
    """JobSpec.content_hash() of the run's resolved spec; a canonical-JSON hash when it no longer parses."""
    if not spec:
        return None
    try:
        from tunewise.spec import load_spec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_spec(raw=dict(spec)).content_hash()
    except Exception:  # a spec written by a newer or older tunewise: hash what is there
        payload = {k: v for k, v in spec.items() if k != "name"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
