"""A mirror directory: a verified model copied into the hub's URL layout under a directory any
static file server (nginx, a CDN origin) serves. Atomic per file, manifest last, resumable."""

from __future__ import annotations

import os
from pathlib import Path

from .. import manifest as mf
from ..errors import DiskError, UsageError
from ..fsutil import atomic_write
from ..layout import META, file_relpath, manifest_relpath
from ..records import FileRecord, Records, Stat
from .base import SKIPPED, ExportReport, ExportedFile, Verified
from .placement import PRESENT, place, swap_symlink


def export_to_directory(v: Verified, root: Path, alias: str | None) -> ExportReport:
    m = v.manifest
    tmp = root / META / "tmp"
    records = Records(root / META / "records" / f"{m.repo.replace('/', '--')}@{v.commit}.json")
    done = records.files()
    report = ExportReport(m.name, m.repo, v.commit, str(root), str(root / manifest_relpath(m.repo, v.commit)))
    fresh: dict[str, FileRecord | None] = {}
    for f in m.files:
        dst = root / file_relpath(m.repo, v.commit, f.path)
        src = v.source(f.path)
        fingerprint = v.fingerprint(f.path)
        record = done.get(f.path)
        if _unchanged(record, dst, fingerprint):
            report.files.append(ExportedFile(f.path, str(dst), SKIPPED))
            continue
        method = place(src, dst, tmp, fingerprint)
        report.files.append(ExportedFile(f.path, str(dst), SKIPPED if method == PRESENT else method))
        fresh[f.path] = FileRecord(Stat.of(dst), fingerprint)
    if fresh:
        records.update(fresh)
    text = mf.to_toml(m).encode()
    manifest_path = Path(report.manifest)
    if not manifest_path.is_file() or manifest_path.read_bytes() != text:
        _write(manifest_path, text)
    if alias:
        report.aliases.append(_link_alias(root / m.repo / "resolve", alias, v.commit))
    return report


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


__all__ = ["export_to_directory"]
