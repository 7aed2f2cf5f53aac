"""A deploy directory (``--local-dir DIR``): verified files at ``DIR/<path>``, like ``hf download
--local-dir``, and weightsafe's own bookkeeping out of the way in ``DIR/.cache/weightsafe/``.

That folder holds the manifest the files were verified against (so ``verify --local-dir DIR``
needs no name and no network), their fingerprints, and the temporary names files are placed
under before an atomic rename. Loaders never see a partial file: downloads resume in weightsafe's
cache, and only verified bytes are placed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import manifest as mf
from ..errors import DiskError, UsageError
from ..fsutil import atomic_write
from ..records import FileRecord, Records, Stat
from .placement import Placement, place

META_DIR = Path(".cache") / "weightsafe"


@dataclass(frozen=True)
class LocalDir:
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

    def save_manifest(self, manifest: mf.Manifest) -> None:
        try:
            atomic_write(self.manifest_path, mf.to_toml(manifest).encode())
        except OSError as e:
            raise DiskError(f"cannot write {self.manifest_path}: {e.strerror or e}") from None

    def place(self, relpath: str, src: Path, record: FileRecord | None) -> tuple[Placement, FileRecord | None]:
        """Place one verified file; returns where, and its record re-keyed to the new name's stat
        (so a later verify of the directory is a fingerprint check, not a full hash)."""
        mf.check_relpath(relpath)
        dst = self.root / relpath
        method = place(src, dst, self.meta / "tmp", record.fingerprint if record else None)
        return Placement(relpath, str(dst), method), record.moved_to(Stat.of(dst)) if record else None


__all__ = ["LocalDir", "META_DIR"]
