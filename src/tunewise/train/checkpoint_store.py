"""File-level primitives for checkpoints: one `Store` over a local directory or an fsspec URL.

Two commit protocols, chosen by what the filesystem can do atomically:
- local disk: write into a temp directory, fsync, then rename it into place (rename is atomic);
- object stores (s3, gcs, memory): "rename" is a copy, so each save uploads its files under a
  prefix of its own inside the checkpoint (`step-N/upload-<id>/`), and `manifest.json`, written
  last in a single PUT, commits them by naming that prefix. Until then readers see the previous
  manifest (or none); a re-save of the same step replaces the manifest in one PUT as well.

Every write and read of a stored file is retried with backoff on errors that may pass (a dropped
connection, a throttled request); a missing file or a refused permission is not retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
UPLOAD_PREFIX = "upload-"  # object stores: one save's files, committed by the manifest naming it
T = TypeVar("T")
# Errors that say the request can never succeed; any other OSError (connection reset, timeout,
# throttling, a 5xx the client maps to EIO) may pass and is retried.
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
CHUNK_BYTES = 8 * 1024 * 1024


class ManifestUnreadable(Exception):
    """manifest.json exists but is not a complete JSON object (a crash while writing it)."""


class Mismatch(Exception):
    """A stored file is missing or does not match its manifest entry (the message says which)."""


class Store:
    """The checkpoint root as a filesystem plus the operations the manager needs."""

    def __init__(self, root: str | os.PathLike[str]):
        text = os.fspath(root)
        self.fs, path = fsspec.core.url_to_fs(text)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = os.path.abspath(path) if self.is_local else path.rstrip("/")
        # Commit by atomic directory rename where the filesystem has one; tests turn it off to
        # exercise the object-store protocol on local disk.
        self.commit_by_rename = self.is_local
        self.attempts = 4  # tries per remote file operation
        self.backoff_s = 0.5  # first wait between tries; doubled after each

    def retrying(self, what: str, operation: Callable[[], T]) -> T:
        """`operation()`, tried again on a transient OSError (remote stores only); `what` names it in logs."""
        attempts = 1 if self.is_local else self.attempts
        for attempt in range(1, attempts + 1):
            try:
                return operation()
            except _PERMANENT:
                raise
            except OSError as err:
                if attempt == attempts:
                    raise
                wait = self.backoff_s * 2 ** (attempt - 1)
                logger.warning("%s failed (%s); try %d of %d in %.1f s", what, err, attempt + 1, attempts, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def describe(self) -> str:
        return self.uri(self.root)

    # --- reading -------------------------------------------------------------------------------

    def child_dirs(self) -> list[str]:
        """Names of the directories directly under the root ([] if the root does not exist)."""
        if self.is_local:
            try:
                return [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                return []
        self.fs.invalidate_cache(self.root)  # another process may have written since we last listed
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        return [posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory"]

    def read_manifest(self, directory: str) -> dict[str, Any] | None:
        """The parsed manifest, None if absent; raises ManifestUnreadable if cut short."""
        path = self.join(directory, MANIFEST)
        try:
            raw = self.retrying(f"reading {path}", lambda: self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise ManifestUnreadable(str(err)) from None
        if not isinstance(data, dict):
            raise ManifestUnreadable("not a JSON object")
        return data

    def hash_file(self, path: str) -> tuple[str, int]:
        """(sha256 hex, size in bytes) of a stored file."""
        digest, size = hashlib.sha256(), 0
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def stat_signature(self, directory: str, names: list[str]) -> tuple | None:
        """(size, mtime_ns) of each file on local disk, to skip re-hashing unchanged files."""
        if not self.is_local:
            return None
        try:
            return tuple((n, *_size_mtime(os.stat(self.join(directory, n)))) for n in names)
        except OSError:
            return None

    def find_mismatch(self, directory: str, files: dict[str, dict[str, Any]]) -> str | None:
        """None if every file matches its {"sha256", "bytes"} entry, else what is wrong with the first that does not."""
        for rel, expected in sorted(files.items()):
            try:
                sha, size = self.hash_file(self.join(directory, rel))
            except FileNotFoundError:
                return f"{rel} is missing"
            problem = _compare(rel, sha, size, expected)
            if problem:
                return problem
        return None

    def download_verified(self, directory: str, files: dict[str, dict[str, Any]], dest: Path, prefix: str = "") -> Path:
        """Download into `dest/<directory>/`, checking every file while it streams; raises Mismatch.

        `prefix`: the folder inside the checkpoint directory that holds its files (object stores)."""
        final = dest / directory
        partial = dest / f"{TMP_PREFIX}{directory}-{uuid.uuid4().hex}"
        source = posixpath.join(directory, prefix) if prefix else directory
        try:
            for rel, expected in sorted(files.items()):
                try:
                    sha, size = self.download(source, rel, partial / rel)
                except FileNotFoundError:
                    raise Mismatch(f"{rel} is missing") from None
                problem = _compare(rel, sha, size, expected)
                if problem:
                    raise Mismatch(problem)
            self.download(directory, MANIFEST, partial / MANIFEST)
            if final.exists():
                shutil.rmtree(final)
            partial.rename(final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return final

    def download(self, directory: str, name: str, dest: Path) -> tuple[str, int]:
        """Copy a stored file to local `dest`, returning the (sha256, bytes) of what was read."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        path = self.join(directory, name)

        def copy() -> tuple[str, int]:
            digest, size = hashlib.sha256(), 0
            with self.fs.open(path, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            return digest.hexdigest(), size

        return self.retrying(f"downloading {path}", copy)

    # --- writing -------------------------------------------------------------------------------

    def make_root(self) -> None:
        self._makedirs(self.root)

    def _makedirs(self, path: str) -> None:
        # Object stores have no directories to make, and s3fs's makedirs would create a missing
        # bucket: a typo in checkpoint.dir must fail, not leave a new bucket behind.
        if not _is_object_store(self.fs):
            self.fs.makedirs(path, exist_ok=True)

    def new_temp_dir(self, name: str) -> str:
        path = self.join(f"{TMP_PREFIX}{name}-{uuid.uuid4().hex}")
        os.makedirs(path)
        return path

    def new_upload_dir(self, name: str) -> str:
        """Object stores: a fresh prefix inside checkpoint `name` for one save's files."""
        return self.join(name, f"{UPLOAD_PREFIX}{uuid.uuid4().hex[:16]}")

    def upload_dirs(self, name: str) -> list[str]:
        """Object stores: the upload prefixes under checkpoint `name` (committed or left by a crash)."""
        path = self.join(name)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        names = [posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory"]
        return [n for n in names if n.startswith(UPLOAD_PREFIX)]

    def upload(self, src: Path, path: str) -> tuple[str, int]:
        """Copy local `src` to stored `path` (fsynced on local disk); returns (sha256, bytes) written."""
        parent = posixpath.dirname(path)
        if self.is_local:
            os.makedirs(parent, exist_ok=True)
        else:
            self._makedirs(parent)

        def copy() -> tuple[str, int]:
            digest, size = hashlib.sha256(), 0
            opener = open(path, "wb") if self.is_local else self.fs.open(path, "wb")
            with open(src, "rb") as fh, opener as out:
                while chunk := fh.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                if self.is_local:
                    out.flush()
                    os.fsync(out.fileno())
            return digest.hexdigest(), size

        return self.retrying(f"uploading {path}", copy)

    def write_manifest(self, directory_path: str, manifest: dict[str, Any]) -> None:
        """Write manifest.json in one go: on object stores this single PUT commits the checkpoint."""
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        path = posixpath.join(directory_path, MANIFEST)
        if self.is_local:
            with open(path, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        else:
            self.retrying(f"writing {path}", lambda: self.fs.pipe_file(path, data))

    def commit_temp_dir(self, temp: str, name: str) -> None:
        """Rename a complete temp dir to `name`, replacing an older checkpoint of the same name."""
        for dirpath, _dirs, _files in os.walk(temp):
            _fsync_dir(dirpath)
        final = self.join(name)
        replaced = None
        if os.path.exists(final):
            # rename() cannot replace a non-empty directory: move the old one aside first.
            replaced = self.join(f"{TMP_PREFIX}{name}-{uuid.uuid4().hex}-replaced")
            os.replace(final, replaced)
        os.replace(temp, final)
        _fsync_dir(self.root)
        if replaced:
            shutil.rmtree(replaced, ignore_errors=True)

    def remove_checkpoint(self, name: str) -> None:
        """Delete so that no crash midway leaves something that looks complete."""
        path = self.join(name)
        if self.is_local and self.commit_by_rename:
            # One atomic rename takes it out of view; the rest is just freeing space.
            doomed = self.join(f"{TMP_PREFIX}{name}-{uuid.uuid4().hex}-deleted")
            try:
                os.replace(path, doomed)
            except FileNotFoundError:
                return
            shutil.rmtree(doomed, ignore_errors=True)
            return
        self.remove_tree(path, manifest_first=True)

    def remove_tree(self, path: str, *, manifest_first: bool = False) -> None:
        if self.is_local:
            if manifest_first:
                _unlink_quiet(posixpath.join(path, MANIFEST))
            shutil.rmtree(path, ignore_errors=True)
            return
        if manifest_first:
            try:
                self.fs.rm_file(posixpath.join(path, MANIFEST))
            except FileNotFoundError:
                pass
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def mtime(self, name: str) -> float | None:
        """Modification time (s since epoch) of a local entry under the root; None elsewhere."""
        if not self.is_local:
            return None
        try:
            return os.stat(self.join(name)).st_mtime
        except OSError:
            return None


def _is_object_store(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return bool(set(protocols) & {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})


def _compare(rel: str, sha: str, size: int, expected: dict[str, Any]) -> str | None:
    if size != expected["bytes"]:
        return f"{rel} has {size} bytes, the manifest says {expected['bytes']}"
    if sha != expected["sha256"]:
        return f"{rel} does not match its sha256"
    return None


def _size_mtime(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns


def _fsync_dir(path: str) -> None:
    # Makes the directory entries (new names, the rename) durable across power loss, not just SIGKILL.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
