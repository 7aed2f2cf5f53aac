"""The local cache: where verified files live, where partial downloads wait, and what we know.

Layout under the cache root (``--cache-dir``, ``WEIGHTSAFE_CACHE``, else the platform cache dir)::

    models/<slug>/<revision>/<path>        verified files only: the directory a user loads
    partial/<slug>/<revision>/<path>.part  bytes of a download in progress, + .part.json state
    locks/<slug>/<revision>/<path>.lock    one lock per file (fcntl: freed when a process dies)
    records/<slug>/<revision>.json         per-file stat + xxh3 fingerprint + verified digests
    manifests/<slug>@<commit>.toml         manifests pinned by ``pull ORG/REPO`` (offline verify)

A file reaches ``models/`` only by an atomic rename after every digest matched, so a file at its
final path is a verified file, always. Every path is checked to stay under the root.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import DiskError, UsageError
from .manifest import check_relpath
from .pipeline import drop_pages

if TYPE_CHECKING:  # filelock loads only where a lock is taken: not on read-only paths (verify, path)
    from filelock import FileLock

def slug(name: str) -> str:
    """File-system name of a model: ``org/repo`` becomes ``org--repo``."""
    return name.replace("/", "--")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``, or {} when it is missing or unreadable (state files are hints)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def refuse_planted(path: Path) -> None:
    """Refuse to write through something planted at a cache path we are about to open: a symlink
    (the write would land wherever it points), a hard link (it would change another file too) or
    anything but a regular file. Says what was found; the user removes it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise DiskError(f"{path} is a symlink (to {os.readlink(path)}), not a file the cache wrote: "
                        f"refusing to write through it; remove it")
    if not stat.S_ISREG(st.st_mode):
        raise DiskError(f"{path} is not a regular file: refusing to use it; remove it")
    if st.st_nlink > 1:
        raise DiskError(f"{path} has {st.st_nlink} hard links, so writing it would change another file: "
                        f"refusing; remove it")


def nofollow(path, flags: int) -> int:
    """An ``opener`` for open(): never follows a symlink at the last path component."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass(frozen=True)
class Stat:
    """What identifies an unchanged file cheaply: size, mtime and inode."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path) -> "Stat":
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_map(value) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class FileRecord:
    """What was proven about one file and when: the stat it had, its xxh3-128 fingerprint, and
    the digests it passed with their sources. A hint, not the truth: a record that does not parse
    is no record (the file is hashed again), and one whose stat differs from the file's says
    nothing about it. The JSON form is unchanged from earlier releases, so caches carry over."""

    stat: Stat
    fingerprint: str | None
    digests: dict[str, str] = field(default_factory=dict)   # algorithm -> hex
    sources: dict[str, str] = field(default_factory=dict)   # algorithm -> where the digest came from
    verified_at: float | None = None

    @classmethod
    def passed(cls, stat: Stat, fingerprint: str, digests) -> "FileRecord":
        """A record for a file that just passed ``digests`` (manifest.Digest objects)."""
        return cls(stat, fingerprint, {d.alg: d.hex for d in digests}, {d.alg: d.source for d in digests},
                   round(time.time(), 3))

    @classmethod
    def from_json(cls, raw) -> "FileRecord | None":
        if not isinstance(raw, dict) or not all(_int(raw.get(k)) for k in ("size", "mtime_ns", "ino")):
            return None
        fingerprint, at = raw.get("xxh3-128"), raw.get("verified_at")
        return cls(Stat(raw["size"], raw["mtime_ns"], raw["ino"]),
                   fingerprint if isinstance(fingerprint, str) else None,
                   _str_map(raw.get("digests")), _str_map(raw.get("sources")),
                   float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None)

    def to_json(self) -> dict:
        out: dict = {"size": self.stat.size, "mtime_ns": self.stat.mtime_ns, "ino": self.stat.ino,
                     "xxh3-128": self.fingerprint}
        if self.digests or self.sources:
            out.update(digests=self.digests, sources=self.sources)
        if self.verified_at is not None:
            out["verified_at"] = self.verified_at
        return out

    def matches(self, stat: Stat) -> bool:
        """The file is the one this record is about (same size, mtime and inode)."""
        return self.stat == stat

    def covers(self, digests) -> bool:
        """Every one of ``digests`` (manifest.Digest objects) is among those this file passed."""
        return bool(self.digests) and all(self.digests.get(d.alg) == d.hex for d in digests)

    def moved_to(self, stat: Stat) -> "FileRecord":
        """The same facts about the same bytes under another name (a link or checked copy)."""
        return replace(self, stat=stat)


class Records:
    """Per-file facts for one model directory: stat, xxh3-128 fingerprint, verified digests.

    Read-modify-write is done under a lock and written atomically, so concurrent pulls and
    verifies of the same model never lose each other's entries.
    """

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict:
        return read_json_object(self.path)

    def files(self) -> dict[str, FileRecord]:
        return self.files_of(self.load())

    @staticmethod
    def files_of(data: dict) -> dict[str, FileRecord]:
        """The file records in ``data`` (from ``load``), for a caller that also needs its metadata."""
        files = data.get("files", {})
        if not isinstance(files, dict):
            return {}
        return {path: rec for path, raw in files.items() if (rec := FileRecord.from_json(raw)) is not None}

    def update(self, entries: dict[str, FileRecord | None] | None = None, **meta) -> None:
        """Set (or, with None, drop) file entries and top-level metadata in one locked write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(str(self.path) + ".lock"):
            data = self.load()
            files = data.setdefault("files", {})
            for path, entry in (entries or {}).items():
                if entry is None:
                    files.pop(path, None)
                else:
                    files[path] = entry.to_json()
            data.update(meta)
            atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


class Cache:
    """Paths and primitives of one cache root. Knows nothing of HTTP or manifests' meaning."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(Path(root).expanduser()))

    def _under(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise UsageError(f"refusing path outside the cache: {path}")
        return path

    def model_dir(self, name: str, revision: str) -> Path:
        return self._under("models", slug(name), _safe_rev(revision))

    def final_path(self, name: str, revision: str, relpath: str) -> Path:
        check_relpath(relpath)
        return self._under("models", slug(name), _safe_rev(revision), relpath)

    def part_path(self, name: str, revision: str, relpath: str) -> Path:
        check_relpath(relpath)
        return self._under("partial", slug(name), _safe_rev(revision), internal_name(relpath, ".part"))

    def lock(self, name: str, revision: str, relpath: str) -> FileLock:
        check_relpath(relpath)
        path = self._under("locks", slug(name), _safe_rev(revision), internal_name(relpath, ".lock"))
        self.ensure_dir(path.parent)
        refuse_planted(path)
        from filelock import FileLock

        return FileLock(str(path))

    def records(self, name: str, revision: str) -> Records:
        return Records(self._under("records", slug(name), _safe_rev(revision) + ".json"))

    def dir_records(self, directory: Path) -> Records:
        """Records for a directory outside the cache (``verify --dir``), keyed by its real path."""
        import hashlib

        key = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:32]
        return Records(self._under("records", "_dirs", key + ".json"))

    def pinned_dir(self) -> Path:
        return self._under("manifests")

    def ensure_dir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DiskError(f"cannot create {path}: {e.strerror}") from None

    def commit(self, part: Path, final: Path, keep_cache: bool = False) -> None:
        """Make a verified part visible at its final path: fsync, atomic rename, fsync dir; then,
        unless ``keep_cache``, drop its pages from the page cache (they are on disk)."""
        self.ensure_dir(final.parent)
        refuse_planted(part)
        with open(part, "rb+", opener=nofollow) as fh:
            os.fsync(fh.fileno())
            if not keep_cache:
                drop_pages(fh.fileno())
        os.replace(part, final)
        fsync_dir(final.parent)

    def free_bytes(self) -> int:
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        import shutil

        return shutil.disk_usage(probe).free


def internal_name(relpath: str, suffix: str) -> str:
    """``relpath + suffix`` for the cache's own files, shortened to a digest of the path when the
    last component plus the suffix (and a part's ``.json`` state) would pass the 255-byte limit."""
    head, _, last = relpath.rpartition("/")
    if len((last + suffix + ".json").encode("utf-8", "surrogatepass")) > 255:
        import hashlib

        last = "~" + hashlib.sha256(relpath.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return (head + "/" if head else "") + last + suffix


def _safe_rev(revision: str) -> str:
    """A revision as one directory name (``refs/pr/1`` becomes ``refs--pr--1``)."""
    name = revision.replace("/", "--")
    try:
        check_relpath(name, "revision")
    except ValueError as e:
        raise UsageError(f"revision {revision!r:.80} cannot name a cache folder: {e}") from None
    return name


__all__ = ["Cache", "FileRecord", "Records", "Stat", "atomic_write", "slug"]
