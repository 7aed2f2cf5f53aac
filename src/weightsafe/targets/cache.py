"""weightsafe's own cache as a target: a part file whose every digest matched becomes the file at
its final path (``models/<slug>/<revision>/<path>``) by fsync + atomic rename, and its record
(stat, fingerprint, digests) is written, so a file at its final path is a verified file, always.

The puller downloads and judges the part; this only commits it. Discarding the part's resume
state stays with the puller, which owns part files (``sources/resume.py``).
"""

from __future__ import annotations

from pathlib import Path

from ..cache import Cache
from ..errors import DiskError
from ..manifest import FileEntry, Manifest
from ..records import FileRecord, Stat
from .base import Finished, Placement

RENAME = "rename"


class CacheTarget:
    """One model's folder in the cache. ``place(entry, part, record)`` commits a verified part;
    ``record`` is what it passed (re-keyed to the final name's stat before it is written)."""

    workers = 1  # the puller runs its own files in parallel; place() is safe from several threads

    def __init__(self, cache: Cache, manifest: Manifest, keep_cache: bool = False):
        self.cache = cache
        self.manifest = manifest
        self.keep_cache = keep_cache
        self.records = cache.records(manifest.name, manifest.revision)
        self.root = str(cache.model_dir(manifest.name, manifest.revision))
        self._notes: list[str] = []

    def place(self, entry: FileEntry, src: Path, record: FileRecord | None) -> Placement:
        """Make the verified part ``src`` the file ``entry.path``: fsync, rename, fsync the folder;
        its pages are dropped from the page cache unless ``keep_cache``. A record that cannot be
        written is a note, not a failure: records are hints, and the file is verified either way."""
        m = self.manifest
        final = self.cache.final_path(m.name, m.revision, entry.path)
        try:
            self.cache.commit(src, final, self.keep_cache)
        except OSError as e:
            raise DiskError(f"{entry.path}: cannot move into the cache: {e.strerror or e}") from None
        if record is not None:
            try:
                self.records.update({entry.path: record.moved_to(Stat.of(final))})
            except OSError as e:
                note = (f"could not update {self.records.path} ({e.strerror or e}); the next pull or "
                        f"verify re-hashes the files it does not cover")
                if note not in self._notes:
                    self._notes.append(note)
        return Placement(entry.path, str(final), RENAME)

    def finish(self) -> Finished:
        """Nothing is left to write: each file's record went with it. The puller writes the
        model's metadata (commit, what was pulled), which only it knows."""
        return Finished(self.root, notes=tuple(self._notes))


__all__ = ["CacheTarget", "RENAME"]
