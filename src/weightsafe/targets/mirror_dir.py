"""A mirror directory: a verified model copied into the hub's URL layout under a directory any
static file server (nginx, a CDN origin) serves. Atomic per file, manifest last, resumable:
a file already exported with the same fingerprint (per the directory's own records) is left alone."""

from __future__ import annotations

import os
from pathlib import Path

from .. import manifest as mf
from ..cache import slug
from ..errors import DiskError, UsageError
from ..fsutil import atomic_write
from ..layout import META, file_relpath, manifest_relpath
from ..records import FileRecord, Records, Stat
from .base import PRESENT, Finished, Placement
from .placement import place, swap_symlink


class MirrorDirTarget:
    """``{root}/{repo}/resolve/{commit}/{path}`` by reflink, hard link or checked copy; on
    ``finish`` the manifest at ``layout.manifest_relpath`` and ``resolve/{alias} -> {commit}``."""

    workers = 1

    def __init__(self, root: Path, manifest: mf.Manifest, commit: str, alias: str | None = None):
        self.dir = Path(root)
        self.manifest = manifest
        self.commit = commit
        self.alias = alias
        self.root = str(root)
        self.records = Records(self.dir / META / "records" / f"{slug(manifest.repo)}@{commit}.json")
        self._done: dict[str, FileRecord] | None = None
        self._fresh: dict[str, FileRecord | None] = {}

    @property
    def manifest_path(self) -> Path:
        return self.dir / manifest_relpath(self.manifest.repo, self.commit)

    def place(self, entry: mf.FileEntry, src: Path, record: FileRecord | None) -> Placement:
        if self._done is None:
            self._done = self.records.files()
        dst = self.dir / file_relpath(self.manifest.repo, self.commit, entry.path)
        fingerprint = record.fingerprint if record else None
        if _unchanged(self._done.get(entry.path), dst, fingerprint):
            return Placement(entry.path, str(dst), PRESENT)
        method = place(src, dst, self.dir / META / "tmp", fingerprint)
        self._fresh[entry.path] = FileRecord(Stat.of(dst), fingerprint)
        return Placement(entry.path, str(dst), method)

    def finish(self) -> Finished:
        if self._fresh:
            self.records.update(self._fresh)
        text = mf.to_toml(self.manifest).encode()
        path = self.manifest_path
        if not path.is_file() or path.read_bytes() != text:
            _write(path, text)
        aliases = ()
        if self.alias:
            aliases = (_link_alias(self.dir / self.manifest.repo / "resolve", self.alias, self.commit),)
        return Finished(self.root, str(path), aliases)


def _unchanged(record: FileRecord | None, dst: Path, fingerprint: str | None) -> bool:
    try:
        stat = Stat.of(dst)
    except FileNotFoundError:
        return False
    return bool(fingerprint) and record is not None and record.matches(stat) and record.fingerprint == fingerprint


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as e:
        raise DiskError(f"cannot write {path}: {e.strerror or e}") from None


def _link_alias(resolve_dir: Path, alias: str, commit: str) -> str:
    """``resolve/{alias} -> {commit}``, swapped atomically (a reader sees the old or new commit)."""
    mf.check_relpath(alias, "revision")
    link = resolve_dir / alias
    target = os.path.relpath(resolve_dir / commit, link.parent)
    if link.is_symlink() and os.readlink(link) == target:
        return str(link)
    if link.exists() and not link.is_symlink():
        raise UsageError(f"{link} exists and is not a symlink; remove it to let the alias {alias!r} point "
                         f"at {commit}")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        swap_symlink(link, target)
    except OSError as e:
        raise DiskError(f"cannot link {link} -> {target}: {e.strerror or e}") from None
    return str(link)


__all__ = ["MirrorDirTarget"]
