"""Where uploaded bytes live: a folder in the workspace by default, or any fsspec URL (s3://, gs://).

Keys are made from our own ids (`file-abc....jsonl`), never from a client's file name, and are
checked again here before any path is built from them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

_KEY = re.compile(r"^[a-z_-]{2,12}[A-Za-z0-9]{8,40}(\.[a-z0-9]{1,8})?$")
CHUNK_BYTES = 1 << 20


class BlobStore:
    """Put, get and delete whole objects by key under one root (a local folder or a URL)."""

    def __init__(self, root: str | Path):
        root = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return f"{self.root.rstrip('/')}/{key}"

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under `key` (written aside, then renamed where the store allows)."""
        target = self._path(key)
        if self.is_local:
            tmp = f"{target}.partial"
            shutil.copyfile(source, tmp)
            Path(tmp).replace(target)
        else:
            self.fs.put_file(str(source), target)

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        """Store what `stream` yields under `key`; returns the byte count."""
        written = 0
        target = self._path(key)
        partial = f"{target}.partial" if self.is_local else target
        with self.fs.open(partial, "wb") as out:
            while chunk := stream.read(CHUNK_BYTES):
                out.write(chunk)
                written += len(chunk)
        if self.is_local:
            Path(partial).replace(target)
        return written

    def open(self, key: str) -> BinaryIO:
        return self.fs.open(self._path(key), "rb")

    def local_path(self, key: str, scratch: Path, *, fetch: bool = True) -> Path:
        """A local path holding the object: the stored file itself, or a copy in `scratch` (made unless
        `fetch` is False, which only names the path)."""
        if self.is_local:
            return Path(self._path(key))
        dest = scratch / key
        if fetch and not dest.exists():
            scratch.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._path(key), str(dest))
        return dest

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))
