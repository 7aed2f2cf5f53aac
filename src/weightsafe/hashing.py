"""Streaming hashers: every digest a manifest lists, computed in one pass over the bytes.

The same ``MultiHasher`` is fed by the downloader (hash while downloading) and by the
verifier (hash from disk), so a file is judged the same way whichever path it took.
hashlib and xxhash release the GIL on large buffers, so each algorithm runs on its own
thread over shared buffers (see pipeline.py): a file costs its slowest digest, not their sum.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, Iterable

import xxhash

from .manifest import ALGORITHMS
from .pipeline import read_file

FINGERPRINT_ALG = "xxh3-128"


def _new(alg: str, size: int | None):
    if alg == "git-sha1":
        if size is None:
            raise ValueError("git-sha1 needs the file size up front")
        h = hashlib.sha1()
        h.update(b"blob %d\0" % size)
        return h
    if alg == FINGERPRINT_ALG:
        return xxhash.xxh3_128()
    if alg in ALGORITHMS:
        return hashlib.new(alg)
    raise ValueError(f"unknown algorithm {alg!r}")


class MultiHasher:
    """Feeds each chunk to several hashers; ``size`` is needed only for git-sha1."""

    def __init__(self, algs: Iterable[str], size: int | None = None):
        self.algs = tuple(dict.fromkeys(algs))
        self._h = {a: _new(a, size) for a in self.algs}
        self.count = 0

    def update(self, chunk: bytes | memoryview) -> None:
        for h in self._h.values():
            h.update(chunk)
        self.count += len(chunk)

    def sinks(self) -> list[Callable[[memoryview], object]]:
        """One update function per algorithm, to run on separate threads; the caller counts
        the bytes with ``advance`` (the count belongs to the producer, not to any one sink)."""
        return [h.update for h in self._h.values()]

    def advance(self, n: int) -> None:
        self.count += n

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._h.items()}


def hash_file(path: str | os.PathLike, algs: Iterable[str], size: int | None = None,
              progress: Callable[[int], None] | None = None, limit: int | None = None,
              keep_cache: bool = False) -> dict[str, str]:
    """Hash ``path`` (or its first ``limit`` bytes) with every algorithm in ``algs``; the pages
    read are dropped from the page cache after, unless ``keep_cache`` (see pipeline.read_file)."""
    algs = tuple(algs)
    if size is None and "git-sha1" in algs:
        size = os.path.getsize(path)
    hasher = MultiHasher(algs, size)
    feed_file(path, hasher, progress, limit, keep_cache)
    return hasher.hexdigests()


def feed_file(path: str | os.PathLike, hasher: MultiHasher,
              progress: Callable[[int], None] | None = None, limit: int | None = None,
              keep_cache: bool = False) -> int:
    """Read ``path`` once through every algorithm of ``hasher`` in parallel (the fingerprint
    alone, faster than the read, runs inline); returns the bytes read."""
    threads = any(alg != FINGERPRINT_ALG for alg in hasher.algs)
    total = read_file(path, hasher.sinks(), limit, progress, keep_cache, threads)
    hasher.advance(total)
    return total
