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
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import DiskError, UsageError
from .manifest import check_relpath

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


class Records:
    """Per-file facts for one model directory: stat, xxh3-128 fingerprint, verified digests.

    Read-modify-write is done under a lock and written atomically, so concurrent pulls and
    verifies of the same model never lose each other's entries.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = FileLock(str(path) + ".lock")

    def load(self) -> dict:
        return read_json_object(self.path)

    def files(self) -> dict[str, dict]:
        files = self.load().get("files", {})
        return files if isinstance(files, dict) else {}

    def update(self, entries: dict[str, dict | None] | None = None, **meta) -> None:
        """Set (or, with None, drop) file entries and top-level metadata in one locked write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = self.load()
            files = data.setdefault("files", {})
            for path, entry in (entries or {}).items():
                if entry is None:
                    files.pop(path, None)
                else:
                    files[path] = entry
            data.update(meta)
            atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())

    @staticmethod
    def entry(stat: Stat, fingerprint: str, digests) -> dict:
        """A record for a file that just passed ``digests`` (manifest.Digest objects)."""
        return {"size": stat.size, "mtime_ns": stat.mtime_ns, "ino": stat.ino, "xxh3-128": fingerprint,
                "digests": {d.alg: d.hex for d in digests}, "sources": {d.alg: d.source for d in digests},
                "verified_at": round(time.time(), 3)}

    @staticmethod
    def unchanged(entry: dict | None, stat: Stat) -> bool:
        return bool(entry) and (entry.get("size"), entry.get("mtime_ns"), entry.get("ino")) == (
            stat.size, stat.mtime_ns, stat.ino)


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

    def commit(self, part: Path, final: Path) -> None:
        """Make a verified part visible at its final path: fsync, atomic rename, fsync dir."""
        self.ensure_dir(final.parent)
        refuse_planted(part)
        with open(part, "rb+", opener=nofollow) as fh:
            os.fsync(fh.fileno())
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


__all__ = ["Cache", "Records", "Stat", "Timeout", "atomic_write", "slug"]
