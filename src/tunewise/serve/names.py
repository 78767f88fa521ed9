"""What a request's `model` names, resolved to files: a base model, a registered version, a run.

Accepted names, tried in this order:
  1. names claimed by resolvers added with `add_resolver` (the control plane's `ft:` ids);
  2. a configured base model (`smollm2-135m-instruct`, or the name given to a directory);
  3. a registered model: `NAME` (its production alias), `NAME@ALIAS`, `NAME:VERSION`;
  4. a training run in the workspace (`runs/<name>/artifact`).
A name is never used as a filesystem path: run names must be plain names (letters, digits, `._-`).
Registry answers are cached for `ttl_s` seconds, so moving an alias reaches the server without a
restart; `invalidate()` drops the cache at once (a promotion made through the server does).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.serve.errors import ModelRefused, UnknownModel

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REGISTRY_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:(?::(?P<version>\d+))|(?:@(?P<alias>[A-Za-z0-9_-]+)))?$")
PRODUCTION = "production"


@dataclass(frozen=True)
class ResolvedModel:
    """Everything the engine needs to serve one name.

    `id` is what answers carry in their `model` field; `base_dir` is the base model the adapter sits
    on (a full model is its own base); `manifest` ({file: sha256}) is checked whenever the files are
    read from disk, so a registered artifact changed after registration is refused.
    """

    id: str
    base_dir: Path
    adapter_dir: Path | None = None
    version: str | None = None
    kind: str = "base"  # base | registry | run | or a resolver's own kind (e.g. "fine_tune")
    owner: str | None = None  # the team that owns it; None: anyone may use it
    registered_name: str | None = None
    manifest: dict[str, str] | None = field(default=None, hash=False, compare=False)

    @property
    def is_adapter(self) -> bool:
        return self.adapter_dir is not None

    @property
    def cache_key(self) -> str:
        """One key per distinct set of weights: the same files are loaded once, whatever the name."""
        return str(self.adapter_dir or self.base_dir)


Resolver = Callable[[str], "ResolvedModel | None"]


def resolve_artifact(artifact_dir: Path, *, id: str, kind: str, version: str | None = None,
                     owner: str | None = None, registered_name: str | None = None,
                     manifest: dict[str, str] | None = None) -> ResolvedModel:
    """A trained artifact directory (tunewise.json) as a ResolvedModel: an adapter on its base, or a
    full model that is its own base. Resolvers added by the control plane use this too."""
    from tunewise.errors import TunewiseError
    from tunewise.models.artifact import read_artifact_info

    try:
        info = read_artifact_info(artifact_dir)
        if info.method == "reward":
            raise ModelRefused(f"{id}: a reward model scores answers; it cannot generate them")
        base = _base_dir(info.base_model_dir, info.base_model) if info.adapter else info.path
    except ModelRefused:
        raise
    except TunewiseError as err:
        raise ModelRefused(f"{id}: {err.message}") from None
    return ResolvedModel(id=id, base_dir=Path(base), adapter_dir=info.path if info.adapter else None, version=version,
                         kind=kind, owner=owner, registered_name=registered_name, manifest=manifest)


def _base_dir(recorded: str, name: str) -> Path:
    """Where an adapter's base lives: the directory recorded at training, else its name resolved again."""
    if Path(recorded).is_dir():
        return Path(recorded)
    from tunewise.models.resolve import resolve_base_model

    return resolve_base_model(name)


class ModelNames:
    """The resolver chain of one engine."""

    def __init__(self, bases: dict[str, Path] | None = None, *, registry: bool = True, runs: bool = True,
                 ttl_s: float = 10.0):
        self.bases: dict[str, Path] = dict(bases or {})
        self.use_registry = registry
        self.use_runs = runs
        self.ttl_s = ttl_s
        from tunewise.tracking import tracking_uri
        from tunewise.workspace import runs_dir

        # The workspace is fixed when the engine starts: a server keeps serving the same one.
        self.runs_root = runs_dir()
        self.registry_uri = tracking_uri() if registry else None
        self._client: Any = None
        self._resolvers: list[Resolver] = []
        self._cache: dict[str, tuple[float, ResolvedModel]] = {}
        self._lock = threading.Lock()
        self._registry_lock = threading.Lock()  # one MLflow query at a time from this engine

    def add_resolver(self, fn: Resolver) -> None:
        """Add a resolver tried before the built-in ones: `fn(name)` returns a ResolvedModel for a name
        it owns, None for names it does not know, and raises UnknownModel for a malformed own name."""
        self._resolvers.append(fn)

    def registry_client(self) -> Any:
        from tunewise.tracking import mlflow_client

        if self._client is None:
            self._client = mlflow_client(self.registry_uri)
        return self._client

    def add_base(self, name: str, path: Path) -> None:
        self.bases[name] = Path(path)

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache = {k: v for k, v in self._cache.items() if k != name and not k.startswith(name + "@")
                               and not k.startswith(name + ":")}

    def resolve(self, name: str) -> ResolvedModel:
        """The model `name` stands for now; UnknownModel (404) when nothing serves it."""
        if not isinstance(name, str) or not name or len(name) > 256:
            raise UnknownModel("model: give a model name", param="model")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        resolved = self._resolve_uncached(name)
        with self._lock:
            self._cache[name] = (now, resolved)
        return resolved

    def _resolve_uncached(self, name: str) -> ResolvedModel:
        for resolver in self._resolvers:
            found = resolver(name)
            if found is not None:
                return found
        if name in self.bases:
            return ResolvedModel(id=name, base_dir=self.bases[name])
        if self.use_registry:
            with self._registry_lock:
                found = self._from_registry(name)
            if found is not None:
                return found
        if self.use_runs and _PLAIN_NAME.match(name):
            found = self._from_runs(name)
            if found is not None:
                return found
        raise UnknownModel(f"The model `{name}` does not exist or you do not have access to it.", param="model")

    def _from_registry(self, name: str) -> ResolvedModel | None:
        match = _REGISTRY_REF.match(name)
        if match is None:
            return None
        from tunewise.registry import locate_version
        from tunewise.registry.errors import RegistryError

        registered = match["name"]
        ref = match["version"] or match["alias"] or PRODUCTION
        try:
            info, folder = locate_version(registered, ref, self.registry_client())
        except RegistryError as err:
            unregistered = err.message.startswith("no registered model named")
            if unregistered and not (match["version"] or match["alias"]):
                return None  # a plain name the registry does not hold may be a run
            raise UnknownModel(f"model {name!r}: {err.message}", param="model") from None
        if folder is None:  # a remote artifact store: download and verify now
            from tunewise.registry import fetch_version
            from tunewise.registry.errors import IntegrityError

            try:
                folder = fetch_version(registered, info.version, self.registry_client())
            except IntegrityError as err:
                raise ModelRefused(err.message) from None
        return resolve_artifact(folder, id=f"{registered}:{info.version}", kind="registry", version=info.version,
                                registered_name=registered, manifest=info.manifest)

    def _from_runs(self, name: str) -> ResolvedModel | None:
        from tunewise.models.artifact import ARTIFACT_INFO

        artifact = self.runs_root / name / "artifact"
        if not (artifact / ARTIFACT_INFO).is_file():
            return None
        return resolve_artifact(artifact, id=name, kind="run")
