"""Exact and near-duplicate detection over normalized records.

Exact: a 128-bit BLAKE2 digest of the record's canonical JSON. Near: MinHash over 3-word shingles
of all the record's text (lower-cased), indexed with LSH; a candidate counts only when its
estimated Jaccard similarity reaches the threshold. 64 permutations keep 100k rows to seconds
while the estimate stays within about +-0.04 at a similarity of 0.9.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

NUM_PERM = 64
_MAX_LSH_THRESHOLD = 0.95  # datasketch needs >= 2 bands; the jaccard check still applies the real threshold
SHINGLE_WORDS = 3
_WORD = re.compile(r"\w+")
_MIXERS = tuple(np.uint64(m) for m in (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F))


def record_digest(record: dict[str, Any]) -> bytes:
    """Stable digest of a normalized record (key order and unicode escaping do not matter)."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()


def record_text(record: dict[str, Any]) -> str:
    """All the text a record holds, in order, for similarity."""
    parts: list[str] = []
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        for message in record.get(key) or []:
            parts.append(message["content"])
    if "text" in record:
        parts.append(record["text"])
    return "\n".join(parts)


class _WordIds(dict):
    """word -> CRC32, memoized: corpora repeat their vocabulary, and a dict hit is cheaper than hashing."""

    MAX_ENTRIES = 2_000_000

    def __missing__(self, word: str) -> int:
        if len(self) >= self.MAX_ENTRIES:
            self.clear()
        value = self[word] = zlib.crc32(word.encode("utf-8"))
        return value


_WORD_IDS = _WordIds()


def shingle_hashes(text: str, size: int = SHINGLE_WORDS) -> list[int]:
    """Stable 32-bit hashes of the text's lower-cased `size`-word shingles (one for shorter texts).

    Words are hashed with CRC32 and combined arithmetically: stable across runs (unlike hash())
    and about ten times faster than hashing each joined shingle with SHA-1.
    """
    words = _WORD.findall(text.lower()) or [text]
    ids = np.array(list(map(_WORD_IDS.__getitem__, words)), dtype=np.uint64)
    if len(ids) < size:
        ids = np.concatenate([ids, np.zeros(size - len(ids), dtype=np.uint64)])
    combined = np.zeros(len(ids) - size + 1, dtype=np.uint64)
    for offset, multiplier in enumerate(_MIXERS[:size]):
        combined = combined * multiplier + ids[offset : offset + len(combined)]
    return (combined & np.uint64(0xFFFFFFFF)).tolist()


@dataclass(frozen=True)
class Duplicate:
    kind: str  # "exact" | "near"
    of_line: int | None
    similarity: float | None = None


class Deduplicator:
    """Feed records in file order; `check` returns a Duplicate of an earlier record, or None and remembers it."""

    def __init__(self, *, near_threshold: float | None = 0.9, num_perm: int = NUM_PERM):
        self._exact: dict[bytes, int | None] = {}
        self._near_threshold = near_threshold
        self._lsh = None
        if near_threshold is not None:
            from datasketch import MinHash, MinHashLSH

            template = MinHash(num_perm=num_perm, seed=1)
            # Permutations are built once and shared; datasketch >= 2 also wants their scheme named.
            self._minhash_kwargs = {"num_perm": num_perm, "permutations": template.permutations, "hashfunc": int}
            if hasattr(template, "scheme"):
                self._minhash_kwargs["scheme"] = template.scheme
            self._lsh = MinHashLSH(threshold=min(near_threshold, _MAX_LSH_THRESHOLD), num_perm=num_perm)
            self._signatures: dict[int, Any] = {}
            self._lines: dict[int, int | None] = {}

    def check(self, record: dict[str, Any], line: int | None) -> Duplicate | None:
        digest = record_digest(record)
        if digest in self._exact:
            return Duplicate("exact", self._exact[digest])
        if self._lsh is not None:
            found = self._check_near(record, line)
            if found is not None:
                return found
        self._exact[digest] = line
        return None

    def _check_near(self, record: dict[str, Any], line: int | None) -> Duplicate | None:
        from datasketch import MinHash

        signature = MinHash(**self._minhash_kwargs)
        signature.update_batch(shingle_hashes(record_text(record)))
        best: tuple[int, float] | None = None
        for key in self._lsh.query(signature):
            similarity = signature.jaccard(self._signatures[key])
            if similarity >= self._near_threshold and (best is None or key < best[0]):
                best = (key, similarity)
        if best is not None:
            return Duplicate("near", self._lines[best[0]], round(best[1], 3))
        key = len(self._signatures)
        self._signatures[key] = signature
        self._lines[key] = line
        self._lsh.insert(key, signature)
        return None
