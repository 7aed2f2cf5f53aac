"""A deploy directory (``--local-dir DIR``): verified files at ``DIR/<path>``, like ``hf download
--local-dir``, and weightsafe's own bookkeeping out of the way in ``DIR/.cache/weightsafe/``.

That folder holds the manifest the files were verified against (so ``verify --local-dir DIR``
needs no name and no network), their fingerprints, and the temporary names files are placed
under before an atomic rename. Loaders never see a partial file: downloads resume in weightsafe's
cache, and only verified bytes are placed here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .. import manifest as mf
from ..errors import DiskError, UsageError
from ..fsutil import atomic_write
from ..records import FileRecord, Records, Stat
from .base import Finished, Placement
from .placement import place

META_DIR = Path(".cache") / "weightsafe"


@dataclass(frozen=True)
class LocalDir:
    """A deploy directory's paths and what weightsafe keeps in it (read by ``locate``);
    ``LocalDirTarget`` writes it."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / META_DIR

    @property
    def manifest_path(self) -> Path:
        return self.meta / "manifest.toml"

    @property
    def records(self) -> Records:
        return Records(self.meta / "records.json")

    def require(self) -> "LocalDir":
        if not self.root.is_dir():
            raise UsageError(f"--local-dir {self.root}: not a directory")
        return self

    def manifest(self) -> mf.Manifest | None:
        """The manifest the directory was last pulled with, or None for a directory we never wrote."""
        return mf.load(self.manifest_path) if self.manifest_path.is_file() else None


class LocalDirTarget:
    """A deploy directory as a target: each file at ``DIR/<path>`` by reflink, hard link or checked
    copy; on ``finish`` the manifest (with the commit it resolved to) and the files' records, so
    ``verify --local-dir DIR`` needs no name, no network and no full hash."""

    workers = 1

    def __init__(self, root: Path, manifest: mf.Manifest, commit: str | None):
        self.dir = LocalDir(Path(root))
        self.manifest = manifest
        self.commit = commit
        self.root = str(root)
        self._records: dict[str, FileRecord | None] = {}

    def place(self, entry: mf.FileEntry, src: Path, record: FileRecord | None) -> Placement:
        """Place one verified file; its record is re-keyed to the new name's stat (so a later
        verify of the directory is a fingerprint check, not a full hash)."""
        mf.check_relpath(entry.path)
        dst = self.dir.root / entry.path
        method = place(src, dst, self.dir.meta / "tmp", record.fingerprint if record else None)
        if record:
            self._records[entry.path] = record.moved_to(Stat.of(dst))
        return Placement(entry.path, str(dst), method)

    def finish(self) -> Finished:
        m, path = self.manifest, self.dir.manifest_path
        try:
            atomic_write(path, mf.to_toml(pinned_to_commit(m, self.commit)).encode())
        except OSError as e:
            raise DiskError(f"cannot write {path}: {e.strerror or e}") from None
        self.dir.records.update(self._records, name=m.name, repo=m.repo, revision=m.revision, commit=self.commit)
        return Finished(self.root, str(path))


def pinned_to_commit(m: mf.Manifest, commit: str | None) -> mf.Manifest:
    """The manifest as stored beside placed files: with the commit it resolved to, when known."""
    if commit and not m.pinned and not m.commit:
        return replace(m, commit=commit)
    return m


__all__ = ["LocalDir", "LocalDirTarget", "META_DIR", "pinned_to_commit"]
