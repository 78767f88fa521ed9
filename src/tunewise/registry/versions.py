"""Model versions on MLflow's model registry: register a run with its lineage, list, fetch and verify.

A version's source is a content-addressed copy of the run's artifact/ logged to the run's MLflow
artifacts (`registered/<sha256 prefix>`). The sha256 of every file is a tag of the version, and
every fetch recomputes them: an artifact changed after registration is refused, not served.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tunewise.registry.errors import IntegrityError, RegistryError

SHA_PREFIX = "sha256."  # tag key prefix: sha256.<relative path> = <hex digest>
METRIC_PREFIX = "metric."
ALIASES = ("staging", "production")


@dataclass
class VersionInfo:
    name: str
    version: str
    source: str
    run_id: str | None
    aliases: list[str]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def gate(self) -> str:
        return self.tags.get("tunewise.gate", "none")

    @property
    def manifest(self) -> dict[str, str]:
        return {k[len(SHA_PREFIX):]: v for k, v in self.tags.items() if k.startswith(SHA_PREFIX)}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "aliases": self.aliases, "gate": self.gate,
            "run": self.tags.get("tunewise.run"), "method": self.tags.get("tunewise.method"),
            "base_model": self.tags.get("tunewise.base_model"), "source": self.source,
            "metrics": {k[len(METRIC_PREFIX):]: float(v) for k, v in self.tags.items() if k.startswith(METRIC_PREFIX)},
            "lineage": {k: v for k, v in self.tags.items() if k.startswith("tunewise.")},
            "files": self.manifest,
        }


def current_user() -> str:
    """TUNEWISE_USER, else the login name."""
    user = os.environ.get("TUNEWISE_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_not_found(err: Exception) -> bool:
    return getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def registered_model(client: Any, name: str) -> Any:
    """The registered model `name`; RegistryError when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if _is_not_found(err):
            raise RegistryError(f"no registered model named {name!r}",
                                hint="`tunewise models` lists them; `tunewise register RUN --name NAME` creates one") from None
        raise


def _version_info(client: Any, mv: Any) -> VersionInfo:
    model = registered_model(client, mv.name)
    aliases = sorted(a for a, v in (model.aliases or {}).items() if str(v) == str(mv.version))
    return VersionInfo(mv.name, str(mv.version), mv.source, mv.run_id, aliases, dict(mv.tags or {}))


def get_version(name: str, ref: str | int, client: Any = None) -> VersionInfo:
    """A version by number ("3") or alias ("production")."""
    from mlflow.exceptions import MlflowException

    from tunewise.tracking import mlflow_client

    client = client or mlflow_client()
    ref = str(ref)
    registered_model(client, name)
    try:
        mv = client.get_model_version(name, ref) if ref.isdigit() else client.get_model_version_by_alias(name, ref)
    except MlflowException as err:
        if _is_not_found(err):
            what = f"version {ref}" if ref.isdigit() else f"alias {ref!r}"
            raise RegistryError(f"model {name!r} has no {what}", hint="`tunewise models` lists versions and aliases") from None
        raise
    return _version_info(client, mv)


def list_versions(name: str, client: Any = None) -> list[VersionInfo]:
    from tunewise.tracking import mlflow_client

    client = client or mlflow_client()
    model = registered_model(client, name)
    found = client.search_model_versions(f"name = '{quote_name(name)}'")
    by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return sorted((VersionInfo(mv.name, str(mv.version), mv.source, mv.run_id, sorted(by_version.get(str(mv.version), [])),
                               dict(mv.tags or {})) for mv in found), key=lambda v: int(v.version))


def list_models(client: Any = None) -> list[dict[str, Any]]:
    """Every registered name with its versions, aliases and gate verdicts."""
    from tunewise.tracking import mlflow_client

    client = client or mlflow_client()
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        names.extend(m.name for m in page)
        token = page.token
        if not token:
            break
    out = []
    for name in sorted(names):
        versions = list_versions(name, client)
        aliases = {a: v.version for v in versions for a in v.aliases}
        out.append({"name": name, "aliases": aliases, "versions": [v.to_json() for v in versions]})
    return out


def quote_name(text: str) -> str:
    return text.replace("'", "\\'")


# --- fetching and verifying ----------------------------------------------------------------------


def _local_source_dir(client: Any, info: VersionInfo) -> Path | None:
    """The version's files in place when the artifact store is a local folder; None for remote stores."""
    source = info.source
    if source.startswith("runs:/"):
        run_id, _, sub = source[len("runs:/"):].partition("/")
        source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + sub
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def locate_version(name: str, ref: str | int, client: Any = None) -> tuple[VersionInfo, Path | None]:
    """A version and where its files lie when the artifact store is local (None for a remote store),
    without hashing them: callers that load the files verify them with `verify_files` (serving does,
    on every load from disk) or call `fetch_version`."""
    from tunewise.tracking import mlflow_client

    client = client or mlflow_client()
    info = get_version(name, ref, client)
    return info, _local_source_dir(client, info)


def verify_files(folder: Path, manifest: dict[str, str]) -> list[str]:
    """Problems with `folder` against `manifest`: changed, missing and unexpected files."""
    from tunewise.registry.lineage import sha256_file

    problems = []
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
    for rel, expected in sorted(manifest.items()):
        if rel not in present:
            problems.append(f"{rel}: missing")
        elif sha256_file(folder / rel) != expected:
            problems.append(f"{rel}: sha256 differs from the registered one")
    problems += [f"{rel}: not part of the registered version" for rel in sorted(present - set(manifest))]
    return problems


def fetch_version(name: str, ref: str | int, client: Any = None) -> Path:
    """A local folder holding the version's artifact, every file's sha256 verified.

    Raises IntegrityError when any file differs from what was registered.
    """
    from tunewise.tracking import mlflow_client
    from tunewise.workspace import home

    client = client or mlflow_client()
    info = get_version(name, ref, client)
    if not info.manifest:
        raise IntegrityError(f"{name} version {info.version} carries no sha256 tags; it was not registered by tunewise")
    folder = _local_source_dir(client, info)
    if folder is None:
        import mlflow.artifacts

        from tunewise.tracking import tracking_uri

        # A remote store: download afresh each time, so the check covers what is served now.
        folder = home() / "registry" / "cache" / name / info.version
        staging = folder.with_name(folder.name + ".download")
        for path in (folder, staging):
            shutil.rmtree(path, ignore_errors=True)
        staging.mkdir(parents=True)
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=info.source, dst_path=str(staging),
                                                         tracking_uri=tracking_uri())
        shutil.move(downloaded, folder)
        shutil.rmtree(staging, ignore_errors=True)
    problems = verify_files(folder, info.manifest)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise IntegrityError(
            f"{name} version {info.version} ({', '.join(info.aliases) or 'no alias'}) was changed after registration: "
            f"{shown}",
            hint="refusing to load it; register the run again as a new version, or restore the original files",
        )
    return folder


def load_version(name: str, ref: str | int, policy: Any = None, *, merged: bool = False) -> tuple[Any, Any, Any]:
    """Load a registered version for inference, after verifying every file: (model, tokenizer, info)."""
    from tunewise.models.artifact import load_artifact

    return load_artifact(fetch_version(name, ref), policy, merged=merged)


def version_summary(info: VersionInfo) -> str:
    return json.dumps(info.to_json(), indent=2)
