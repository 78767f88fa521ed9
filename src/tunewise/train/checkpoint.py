"""Durable checkpoints: a process killed at any moment never leaves one that loads half-written.

Layout: `<root>/step-00000123/` holds the trainer's files plus `manifest.json` (step, time,
metrics, sha256 and size of every file). The manifest is written last, so a directory without
one is incomplete; a file that does not match its sha256 is corrupt. Both are skipped by
`latest()` and removed by the next `save()`. The root is a path or any fsspec URL (s3://,
gs://, memory://); see checkpoint_store.py for the two commit protocols. A job of several
processes saves with `save_sharded()`: each process stores the files it wrote, and rank 0 commits
the manifest once all have. docs/checkpoints.md describes the format for users.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.errors import CheckpointError
from tunewise.train.checkpoint_info import (
    ARTIFACT_DIR,
    FORMAT_VERSION,
    STEP_DIR,
    CheckpointInfo,
    RankGroup,
    data_dir,
    files_under,
    finite,
    float_metrics,
    step_dir_name,
)
from tunewise.train.checkpoint_policy import SavePolicy
from tunewise.train.checkpoint_store import (
    TMP_PREFIX,
    ManifestUnreadable,
    Mismatch,
    Store,
)

if TYPE_CHECKING:
    from tunewise.spec import CheckpointSpec

logger = logging.getLogger(__name__)
__all__ = ["CheckpointInfo", "CheckpointManager", "CheckpointWarning", "SavePolicy"]

# Temp dirs last modified before this process started belong to a dead writer.
_PROCESS_STARTED = time.time()


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or corrupt."""


class _NewerFormat(Exception):
    """A manifest in a format this version cannot read: skipped, never deleted."""


class CheckpointManager:
    """Saves, lists, verifies, fetches and prunes checkpoints under one root.

    Args:
        root: local directory or fsspec URL; created on first save.
        keep_best: how many checkpoints to keep by `metric` (only those that recorded it).
        keep_last: how many of the newest checkpoints to keep.
        metric: the metrics key that ranks checkpoints for `best()` and `keep_best`.
        mode: "min" if lower `metric` is better (a loss), "max" otherwise.

    One process writes to a root at a time; any number may read.
    """

    def __init__(self, root: str | Path, *, keep_best: int = 1, keep_last: int = 1, metric: str = "val_loss",
                 mode: str = "min"):
        if not str(root):
            raise CheckpointError("checkpoint root is empty", hint="set checkpoint.dir to a path or a URL")
        if keep_best < 0 or keep_last < 0:
            raise CheckpointError(f"keep_best={keep_best}, keep_last={keep_last}: both must be 0 or more")
        if mode not in ("min", "max"):
            raise CheckpointError(f"mode={mode!r} must be 'min' (lower {metric} is better) or 'max'")
        self.keep_best = keep_best
        self.keep_last = keep_last
        self.metric = metric
        self.mode = mode
        try:
            self._store = Store(root)
        except (ImportError, ValueError) as err:
            raise CheckpointError(f"cannot open checkpoint root {root}: {err}",
                                  hint="s3:// needs s3fs and gs:// needs gcsfs installed") from None
        self.root = self._store.describe()
        self._lock = threading.Lock()
        self._corrupt: set[tuple[str, float]] = set()  # (name, created_at) found corrupt by this manager
        self._verified: dict[str, tuple] = {}  # local dir -> stat signature when last verified

    @classmethod
    def from_spec(cls, spec: CheckpointSpec, run_dir: str | Path, *, metric: str = "val_loss",
                  mode: str = "min") -> CheckpointManager:
        """The manager for a job's `checkpoint` section; a relative `dir` (default `checkpoints`) is under run_dir.

        `metric` and `mode` rank checkpoints for keep_best (a loss by default; PPO keeps its best reward).
        """
        root = spec.dir or "checkpoints"
        if "://" not in root and not Path(root).is_absolute():
            root = str(Path(run_dir) / root)  # relative: inside the run, wherever the command runs from
        return cls(root, keep_best=spec.keep_best, keep_last=spec.keep_last, metric=metric, mode=mode)

    # --- writing -------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Fail now, not at the first save an hour into training, if the root cannot be written."""
        probe = self._store.join(f"{TMP_PREFIX}probe-{time.time_ns()}")
        try:
            self._store.make_root()
            self._store.fs.pipe_file(probe, b"")
            self._store.fs.rm_file(probe)
        except OSError as err:
            raise CheckpointError(f"checkpoint root {self.root} is not writable: {err}",
                                  hint="pick another checkpoint.dir or fix its permissions/credentials") from None

    def save(self, step: int, local_dir: str | Path, metrics: dict[str, float] | None = None) -> CheckpointInfo:
        """Copy every file under `local_dir` into the store as checkpoint `step`, atomically, then prune.

        Args:
            step: optimizer steps completed; saving a step that exists replaces it.
            local_dir: directory the trainer wrote (model/optimizer/scheduler/rng/state files).
            metrics: e.g. {"val_loss": 1.23}; used by `best()` and `keep_best`.
        """
        if step < 0:
            raise CheckpointError(f"checkpoint step must be 0 or more, got {step}")
        sources = files_under(Path(local_dir))
        name = step_dir_name(step)
        info = self._store_atomically(step, sources, float_metrics(metrics), name=name, what=f"checkpoint {name}")
        logger.info("saved checkpoint %s (%d files, %.1f MB)", info.uri, len(info.files), info.total_bytes / 1e6)
        return info

    def save_artifact(self, step: int, local_dir: str | Path) -> str:
        """Store the run's final artifact (adapter or model) as `<root>/artifact/`, committed like a
        checkpoint: a reader sees the previous complete artifact or the new one, never a mix. Returns its URI.

        Pruning and `list()` leave it alone; `fetch_artifact()` reads it back.
        """
        sources = files_under(Path(local_dir))
        return self._store_atomically(step, sources, {}, name=ARTIFACT_DIR, what="the artifact").uri

    def _store_atomically(self, step: int, sources: dict[str, Path], metrics: dict[str, float], *, name: str,
                          what: str) -> CheckpointInfo:
        """Begin, upload and commit `sources` as `name` (then prune, for checkpoints); on failure
        nothing is committed and the partial upload is removed."""
        with self._lock:
            try:
                target = self._begin(name)
                try:
                    info = self._commit(step, target, self._upload(sources, target), metrics, name=name)
                except BaseException:
                    self._abandon(target)
                    raise
            except OSError as err:
                raise CheckpointError(f"cannot write {what} to {self.root}: {err}",
                                      hint="check that the directory or bucket exists and is writable") from None
            if name != ARTIFACT_DIR:
                self._prune_quietly(info)
        return info

    def fetch_artifact(self, dest: str | Path) -> Path | None:
        """The stored artifact, downloaded into `dest/artifact/` and verified; None if none was stored."""
        manifest = self._store.read_manifest(ARTIFACT_DIR)
        if manifest is None:
            return None
        try:
            return self._store.download_verified(ARTIFACT_DIR, dict(manifest["files"]), Path(dest),
                                                 prefix=str(manifest.get("prefix") or ""))
        except Mismatch as err:
            raise CheckpointError(f"the artifact in {self.root} is corrupt: {err}") from None

    def save_sharded(self, step: int, local_dir: str | Path, metrics: dict[str, float] | None, *, ranks: RankGroup,
                     owns: Any) -> CheckpointInfo:
        """`save()` for several processes: every rank calls it with the directory it wrote.

        Each rank stores the files under `local_dir` for which `owns(relative_path)` is true (its
        own shards; the directory may be shared with the other ranks of its machine); rank 0 writes
        the manifest, holding every rank's checksums, only after all ranks have uploaded, then
        commits and prunes. A failure on any rank leaves nothing committed and raises on every rank.
        """
        name = step_dir_name(step)
        target, problem = None, None
        if ranks.rank == 0:
            try:
                target = self._begin(name)
            except OSError as err:
                problem = f"rank 0: {err}"
        target, problem = ranks.broadcast((target, problem))
        files: dict[str, dict[str, Any]] = {}
        if problem is None:
            try:
                sources = {rel: src for rel, src in files_under(Path(local_dir)).items() if owns(rel)}
                files = self._upload(sources, target)
            except (OSError, CheckpointError) as err:
                problem = f"rank {ranks.rank}: {getattr(err, 'message', err)}"
        gathered = ranks.gather((files, problem))
        outcome: tuple[str, Any] = ("error", problem)
        if ranks.rank == 0:
            outcome = self._commit_gathered(step, target, gathered, float_metrics(metrics))
        status, value = ranks.broadcast(outcome)
        if status == "error":
            raise CheckpointError(f"cannot write checkpoint {name} to {self.root}: {value}",
                                  hint="the previous complete checkpoint is kept; check the storage and retry")
        return value

    def _commit_gathered(self, step: int, target: str | None, gathered: list, metrics: dict[str, float]) -> tuple:
        """Rank 0: ("ok", info) after committing every rank's files, or ("error", why) with nothing committed."""
        problems = [problem for _, problem in gathered if problem]
        if target is None or problems:
            if target is not None:
                self._abandon(target)
            return "error", "; ".join(problems)
        merged: dict[str, dict[str, Any]] = {}
        for files, _ in gathered:
            merged.update(files)
        try:
            info = self._commit(step, target, merged, metrics)
        except OSError as err:
            self._abandon(target)
            return "error", f"rank 0: {err}"
        self._prune_quietly(info)
        logger.info("saved checkpoint %s (%d files from %d ranks)", info.uri, len(merged), len(gathered))
        return "ok", info

    # The three steps of a save. Local disk: a temp dir, renamed into place. Object stores: a new
    # upload prefix inside the checkpoint dir, which the manifest (one PUT) names.

    def _begin(self, name: str) -> str:
        """Clean up after crashed writers and return where this save's files go."""
        self._store.make_root()
        self._clean_up()
        if self._store.commit_by_rename:
            return self._store.new_temp_dir(name)
        return self._store.new_upload_dir(name)

    def _upload(self, sources: dict[str, Path], target: str) -> dict[str, dict[str, Any]]:
        files = {}
        for rel, src in sources.items():
            sha, size = self._store.upload(src, f"{target}/{rel}")
            files[rel] = {"sha256": sha, "bytes": size}
        return files

    def _commit(self, step: int, target: str, files: dict[str, dict[str, Any]], metrics: dict[str, float],
                name: str | None = None) -> CheckpointInfo:
        store, name = self._store, name or step_dir_name(step)
        manifest = {"format_version": FORMAT_VERSION, "step": step, "created_at": time.time(), "metrics": metrics,
                    "files": files}
        if store.commit_by_rename:
            store.write_manifest(target, manifest)
            store.commit_temp_dir(target, name)
        else:
            manifest["prefix"] = target.rsplit("/", 1)[-1]
            replaced = self._store_prefixes(name)
            store.write_manifest(store.join(name), manifest)  # the commit: one PUT, old or new, never half
            for prefix in replaced - {manifest["prefix"]}:
                store.remove_tree(store.join(name, prefix))
        self._verified.pop(store.join(name), None)
        return CheckpointInfo(step, store.uri(store.join(name)), metrics, manifest["created_at"], files,
                              manifest.get("prefix", ""))

    def _store_prefixes(self, name: str) -> set[str]:
        return set(self._store.upload_dirs(name))

    def _abandon(self, target: str) -> None:
        """Remove a save's files that were never committed (best effort: the next save cleans up too)."""
        try:
            self._store.remove_tree(target)
        except OSError as err:
            logger.warning("could not remove the unfinished upload %s: %s", target, err)

    def _prune_quietly(self, keep: CheckpointInfo) -> None:
        try:
            self._prune(keep=keep)
        except OSError as err:  # the new checkpoint is committed; only space is not reclaimed yet
            logger.warning("could not prune checkpoints under %s: %s", self.root, err)

    def _clean_up(self) -> None:
        """Remove what crashed writers left: stale temp dirs, manifest-less and known-corrupt dirs."""
        store = self._store
        for name in store.child_dirs():
            if name.startswith(TMP_PREFIX):
                mtime = store.mtime(name)
                if mtime is None or mtime < _PROCESS_STARTED:
                    logger.info("removing leftover temp dir %s", store.uri(store.join(name)))
                    store.remove_tree(store.join(name))
            elif STEP_DIR.match(name):
                try:
                    info = self._read_info(name)
                except ManifestUnreadable:
                    info = None
                except _NewerFormat:
                    continue  # not ours to judge
                if info is None or (name, info.created_at) in self._corrupt:
                    logger.info("removing incomplete or corrupt checkpoint %s", store.uri(store.join(name)))
                    store.remove_checkpoint(name)
                elif not store.commit_by_rename:
                    for prefix in set(store.upload_dirs(name)) - {info.prefix}:  # a re-save killed mid-upload
                        store.remove_tree(store.join(name, prefix))

    def _prune(self, keep: CheckpointInfo) -> None:
        infos = self.list()
        keep_names = {keep.name}
        keep_names.update(i.name for i in (infos[-self.keep_last:] if self.keep_last else []))
        keep_names.update(i.name for i in self._ranked(infos)[: self.keep_best])
        for info in infos:
            if info.name not in keep_names:
                logger.info("pruning checkpoint %s", info.uri)
                self._store.remove_checkpoint(info.name)

    # --- reading -------------------------------------------------------------------------------

    def list(self) -> list[CheckpointInfo]:
        """Checkpoints whose manifest exists, oldest first. File contents are not verified."""
        infos = []
        for name in self._store.child_dirs():
            if not STEP_DIR.match(name):
                continue
            try:
                info = self._read_info(name)
            except ManifestUnreadable:
                continue
            except _NewerFormat as err:
                warnings.warn(f"skipping checkpoint {name}: {err}", CheckpointWarning, stacklevel=2)
                continue
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda i: i.step)

    def _read_info(self, name: str) -> CheckpointInfo | None:
        """The checkpoint in directory `name`; None without a manifest, ManifestUnreadable if malformed."""
        manifest = self._store.read_manifest(name)
        if manifest is None:
            return None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise _NewerFormat(f"format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION} "
                               "(written by another tunewise version?)")
        try:
            info = CheckpointInfo(step=int(manifest["step"]), uri=self._store.uri(self._store.join(name)),
                                  metrics=dict(manifest.get("metrics") or {}),
                                  created_at=float(manifest["created_at"]), files=dict(manifest["files"]),
                                  prefix=str(manifest.get("prefix") or ""))
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestUnreadable(f"missing or bad field {err}") from None
        if info.name != name:
            raise ManifestUnreadable(f"manifest is for step {info.step}, not {name}")
        return info

    def latest(self, verify: bool = True) -> CheckpointInfo | None:
        """The newest complete checkpoint; with `verify`, the newest whose files all match their sha256.

        Corrupt ones are skipped with a CheckpointWarning and removed by the next save().
        On remote stores verifying reads every file: prefer `fetch_latest()`, which verifies while it downloads.
        """
        for info in reversed(self.list()):
            if not verify:
                return info
            problem = self._check(info)
            if problem is None:
                return info
            self._skip(info, problem)
        return None

    def best(self) -> CheckpointInfo | None:
        """The complete checkpoint with the best `metric` (the newest on ties); None if none has it."""
        ranked = self._ranked(self.list())
        return ranked[0] if ranked else None

    def fetch(self, info: CheckpointInfo, dest: str | Path | None = None) -> Path:
        """A verified local directory holding the checkpoint's files.

        Local stores return the checkpoint directory itself (`dest` is not used). Remote stores
        download into `dest/step-XXXXXXXX/` (default: a new temporary directory) and verify while
        downloading. Raises CheckpointError if the checkpoint is gone or a file does not match.
        """
        store = self._store
        try:
            stored = self._read_info(info.name)
        except (ManifestUnreadable, _NewerFormat):
            stored = None
        if stored is None:
            raise CheckpointError(f"checkpoint {info.uri} not found (no complete manifest.json)",
                                  hint="it may have been pruned; list() shows what is stored")
        if stored.created_at != info.created_at:
            raise CheckpointError(f"checkpoint {info.uri} was replaced after it was listed",
                                  hint="call latest() or list() again")
        if store.is_local:
            problem = self._check(info)
            if problem:
                self._corrupt.add((info.name, info.created_at))
                raise CheckpointError(f"checkpoint {info.uri} is corrupt: {problem}")
            return Path(store.join(info.name))
        return self._download(info, Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="tunewise-ckpt-")))

    @property
    def remote(self) -> bool:
        """The root is an object store (or any fsspec URL other than local disk)."""
        return not self._store.is_local

    def local_path(self, info: CheckpointInfo) -> Path | None:
        """The checkpoint's directory when the store is local disk (not verified here), else None."""
        return Path(self._store.join(data_dir(info))) if self._store.is_local else None

    def fetch_latest(self, dest: str | Path | None = None) -> tuple[CheckpointInfo, Path] | None:
        """(info, local dir) of the newest checkpoint that verifies; corrupt ones are skipped with a warning.

        What a resume uses: on remote stores each file is read once, not once to verify and once to download.
        """
        if self._store.is_local:
            info = self.latest(verify=True)
            return (info, self.fetch(info)) if info else None
        for info in reversed(self.list()):
            try:
                return info, self.fetch(info, dest)
            except CheckpointError as err:
                self._skip(info, err.message)
        return None

    # --- helpers -------------------------------------------------------------------------------

    def _ranked(self, infos: list[CheckpointInfo]) -> list[CheckpointInfo]:
        scored = [i for i in infos if finite(i.metrics.get(self.metric))]
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(scored, key=lambda i: (sign * i.metrics[self.metric], -i.step))

    def _check(self, info: CheckpointInfo) -> str | None:
        """None if every file matches the manifest, else what is wrong with the first that does not."""
        store, directory = self._store, self._store.join(info.name)
        signature = store.stat_signature(info.name, sorted(info.files))
        if signature is not None and self._verified.get(directory) == (info.created_at, signature):
            return None  # unchanged since this manager hashed it
        problem = store.find_mismatch(data_dir(info), info.files)
        if problem is None and signature is not None:
            self._verified[directory] = (info.created_at, signature)
        return problem

    def _skip(self, info: CheckpointInfo, problem: str) -> None:
        self._corrupt.add((info.name, info.created_at))
        warnings.warn(f"skipping checkpoint {info.uri}: {problem}", CheckpointWarning, stacklevel=3)

    def _download(self, info: CheckpointInfo, dest: Path) -> Path:
        try:
            return self._store.download_verified(info.name, info.files, dest, prefix=info.prefix)
        except Mismatch as err:
            self._corrupt.add((info.name, info.created_at))
            raise CheckpointError(f"checkpoint {info.uri} is corrupt: {err}") from None
        except OSError as err:
            raise CheckpointError(f"cannot download checkpoint {info.uri} to {dest}: {err}") from None
