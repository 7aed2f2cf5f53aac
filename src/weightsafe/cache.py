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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

from .errors import DiskError, UsageError
from .manifest import check_relpath
from .fsutil import fsync_dir, nofollow, refuse_planted
from .pipeline import drop_pages
from .records import Records

if TYPE_CHECKING:  # filelock loads only where a lock is taken: not on read-only paths (verify, path)
    from filelock import FileLock


def slug(name: str) -> str:
    """File-system name of a model: ``org/repo`` becomes ``org--repo``."""
    return name.replace("/", "--")


class CachedDir(NamedTuple):
    """One model directory found in the cache, by its on-disk names: ``models/<slug>/<revision>``."""

    slug: str
    revision: str
    path: Path


class Cache:
    """Paths and primitives of one cache root. Knows nothing of HTTP or manifests' meaning.

    Every path of the layout is asked of this class, never joined by hand elsewhere: one place
    spells it, so a reader (and a test) sees the whole on-disk format here. Methods that take a
    ``name`` and ``revision`` slug them and check the result stays under the root; those that
    take a ``slug`` and ``rev`` take names read from the cache's own directories (``cache ls``,
    ``cache rm``, ``cache gc`` walking it) and only join them.

    >>> from weightsafe.cache import Cache
    >>> cache = Cache("/var/cache/weightsafe")
    >>> cache.model_dir("org/tiny", "refs/pr/1").relative_to(cache.root).as_posix()
    'models/org--tiny/refs--pr--1'
    >>> cache.records_path("org--tiny", "main").relative_to(cache.root).as_posix()
    'records/org--tiny/main.json'
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(Path(root).expanduser()))

    def _checked(self, path: Path) -> Path:
        """``path``, refused if (through a link) it resolves outside the root."""
        real_root = os.path.realpath(self.root)
        if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
            raise UsageError(f"refusing path outside the cache: {path}")
        return path

    # ------------------------------------------------------------ by a model's name and revision
    # Each slugs the name and revision as a user gives them, joins them through the layout below,
    # and checks the result stays under the root.

    def model_dir(self, name: str, revision: str) -> Path:
        return self._checked(self.cached_dir(slug(name), _safe_rev(revision)))

    def final_path(self, name: str, revision: str, relpath: str) -> Path:
        check_relpath(relpath)
        return self._checked(self.cached_dir(slug(name), _safe_rev(revision)) / relpath)

    def part_path(self, name: str, revision: str, relpath: str) -> Path:
        check_relpath(relpath)
        return self._checked(self.partial_dir(slug(name), _safe_rev(revision)) / internal_name(relpath, ".part"))

    def lock(self, name: str, revision: str, relpath: str) -> FileLock:
        check_relpath(relpath)
        path = self._checked(self.locks_dir(slug(name), _safe_rev(revision)) / internal_name(relpath, ".lock"))
        self.ensure_dir(path.parent)
        refuse_planted(path)
        from filelock import FileLock

        return FileLock(str(path))

    def records(self, name: str, revision: str) -> Records:
        return Records(self._checked(self.records_path(slug(name), _safe_rev(revision))))

    def dir_records(self, directory: Path) -> Records:
        """Records for a directory outside the cache (``verify --dir``), keyed by its real path."""
        import hashlib

        key = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:32]
        return Records(self._checked(self.records_root() / "_dirs" / (key + ".json")))

    def pinned_dir(self) -> Path:
        """``manifests/``: listings pinned by ``pull ORG/REPO`` and the revision names they resolve."""
        return self._checked(self.root / "manifests")

    def pinned_refs_path(self) -> Path:
        """Which commit each ``ORG/REPO@REV`` pulled resolved to, and when."""
        return self.pinned_dir() / "refs.json"

    # ------------------------------------------------------------ the layout, by on-disk names

    def models_dir(self) -> Path:
        """``models/``: verified files only."""
        return self.root / "models"

    def partial_root(self) -> Path:
        """``partial/``: downloads in progress (``.part`` + ``.part.json``) and rejected copies."""
        return self.root / "partial"

    def locks_root(self) -> Path:
        """``locks/``: one lock file per file being fetched."""
        return self.root / "locks"

    def records_root(self) -> Path:
        """``records/``: one JSON document per model directory (``_dirs/`` for directories outside)."""
        return self.root / "records"

    def cached_dir(self, slug: str, rev: str) -> Path:
        """``models/<slug>/<rev>`` (``model_dir`` for a name and revision as a user gives them)."""
        return self.models_dir() / slug / rev

    def records_path(self, slug: str, rev: str) -> Path:
        """The records document of ``models/<slug>/<rev>``."""
        return self.records_root() / slug / f"{rev}.json"

    def locks_dir(self, slug: str, rev: str) -> Path:
        return self.locks_root() / slug / rev

    def partial_dir(self, slug: str, rev: str) -> Path:
        return self.partial_root() / slug / rev

    def part_lock_path(self, partial_relpath: str) -> Path:
        """The lock guarding a part file, from its path relative to ``partial/`` without the
        ``.part``/``.part.json`` suffix (``<slug>/<rev>/<internal name>``)."""
        return self.locks_root() / f"{partial_relpath}.lock"

    def pinned_manifest_path(self, slug: str, commit: str) -> Path:
        """Where ``pull ORG/REPO`` kept the manifest it pinned at ``commit``."""
        return self.pinned_dir() / f"{slug}@{commit}.toml"

    def model_dirs(self, revision: str | None = None) -> Iterator[CachedDir]:
        """Every model directory in the cache (only those of ``revision`` if given), sorted."""
        models = self.models_dir()
        if not models.is_dir():
            return
        for model in sorted(models.iterdir()):
            if model.is_dir():
                for rev in sorted(model.iterdir()):
                    if rev.is_dir() and (revision is None or rev.name == revision):
                        yield CachedDir(model.name, rev.name, self.cached_dir(model.name, rev.name))

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


__all__ = ["Cache", "CachedDir", "internal_name", "slug"]
