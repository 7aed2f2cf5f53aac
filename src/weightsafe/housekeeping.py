"""What is in the cache, removing a model, and collecting garbage, as ``hf cache`` users expect.

A file another process holds locked (a pull in flight) is never removed: each candidate's lock
is taken without waiting, and one that is held is skipped and reported. Decisions are made
first (a list of ``Removal``), then carried out, so ``--dry-run`` shows exactly what would go.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .cache import Cache
from .records import Records
from .errors import UsageError
from .manifest import FULL_COMMIT_RE


@dataclass(frozen=True)
class CachedModel:
    """One commit in the cache, under every name it was pulled as (a manifest name, a repo id)."""

    names: tuple[str, ...]
    repo: str
    revisions: tuple[str, ...]
    commit: str | None
    directories: tuple[str, ...]
    files: int
    bytes: int
    last_verified: float | None

    def to_dict(self) -> dict:
        return {"names": list(self.names), "repo": self.repo, "revisions": list(self.revisions),
                "commit": self.commit, "directories": list(self.directories), "files": self.files,
                "bytes": self.bytes, "last_verified": self.last_verified}


@dataclass(frozen=True)
class CacheListing:
    """``weightsafe cache ls``: the cache root and every model in it."""

    root: Path
    models: tuple[CachedModel, ...]

    ok = True
    exit_code = 0

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.models)

    def to_dict(self) -> dict:
        return {"command": "cache ls", "ok": True, "cache": str(self.root), "models": [m.to_dict() for m in self.models]}


RemovalKind = Literal["model", "records", "partial", "rejected", "lock", "orphan-records", "temp",
                      "pinned-manifest"]


@dataclass(frozen=True)
class Removal:
    path: str
    kind: RemovalKind
    bytes: int


@dataclass
class CleanReport:
    command: str
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # held by another process

    ok = True
    exit_code = 0

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def to_dict(self) -> dict:
        return {"command": self.command, "ok": True, "dry_run": self.dry_run, "bytes": self.bytes,
                "removed": [r.__dict__ for r in self.removed], "skipped": self.skipped}


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def list_models(cache: Cache) -> list[CachedModel]:
    """Every model in the cache; one commit stored under two names (a manifest name and its repo
    id) is one row naming both."""
    groups: dict[tuple, dict] = {}
    for model_slug, rev, directory in cache.model_dirs():
        path = cache.records_path(model_slug, rev)
        record = Records(path).model()
        name = record.name or model_slug.replace("--", "/")
        repo = record.repo or name
        revision = record.revision or rev
        commit = record.commit or (revision if FULL_COMMIT_RE.match(revision) else None)
        files = [p for p in directory.rglob("*") if p.is_file()]
        stamps = [r.verified_at for r in record.files.values() if r.verified_at]
        verified = max(stamps) if stamps else (path.stat().st_mtime if path.is_file() else None)
        key = (repo, commit or f"{name}@{revision}")
        g = groups.setdefault(key, {"names": [], "revisions": [], "dirs": [], "files": 0, "bytes": 0,
                                    "inodes": set(), "verified": None, "repo": repo, "commit": commit})
        g["names"].append(name)
        g["revisions"].append(revision)
        g["dirs"].append(str(directory))
        for p in files:
            st = p.stat()
            if (st.st_dev, st.st_ino) not in g["inodes"]:  # a hard link is not stored twice
                g["inodes"].add((st.st_dev, st.st_ino))
                g["files"] += 1
                g["bytes"] += st.st_size
        if verified:
            g["verified"] = max(g["verified"] or 0, verified)
    return [CachedModel(tuple(dict.fromkeys(g["names"])), g["repo"], tuple(dict.fromkeys(g["revisions"])),
                        g["commit"], tuple(g["dirs"]), g["files"], g["bytes"], g["verified"])
            for g in groups.values()]


def listing(cache: Cache) -> CacheListing:
    """``list_models`` with the root it looked in."""
    return CacheListing(cache.root, tuple(list_models(cache)))


@contextmanager
def _unless_locked(lock_path: Path):
    """Yield True holding the lock if nobody holds it, else False (a pull is using the file)."""
    if not lock_path.exists():
        yield True
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    except OSError:  # read-only: nobody can be writing either
        yield True
        return
    try:
        yield True
    finally:
        lock.release()


def _locked_any(lock_dir: Path) -> str | None:
    """A lock under ``lock_dir`` that another process holds, if any."""
    if not lock_dir.is_dir():
        return None
    for lock_path in lock_dir.rglob("*.lock"):
        with _unless_locked(lock_path) as free:
            if not free:
                return str(lock_path)
    return None


def remove(cache: Cache, spec: str, dry_run: bool = False) -> CleanReport:
    """Remove every cached revision of NAME or ORG/REPO (only REV's with ``@REV``)."""
    name, _, rev = spec.partition("@")
    report = CleanReport("cache rm", dry_run)
    matched = []
    for model_slug, rev_dir, directory in cache.model_dirs():
        record = Records(cache.records_path(model_slug, rev_dir)).model()
        names = {record.name, record.repo, model_slug.replace("--", "/"), model_slug}
        revs = {record.revision, record.commit, rev_dir}
        if name in names and (not rev or rev in revs or any(r and r.startswith(rev) for r in revs if len(rev) >= 7)):
            matched.append((model_slug, rev_dir, directory))
    if not matched:
        raise UsageError(f"{spec}: not in the cache {cache.root} (see `weightsafe cache ls`)")
    for model_slug, rev_dir, directory in matched:
        held = _locked_any(cache.locks_dir(model_slug, rev_dir))
        if held:
            raise UsageError(f"{spec}: a pull is in progress ({held} is locked); try again when it ends")
        records = Records(cache.records_path(model_slug, rev_dir))
        candidates: list[tuple[Path, RemovalKind]] = [
            (directory, "model"), (records.path, "records"), (records.lock_path, "lock"),
            (cache.partial_dir(model_slug, rev_dir), "partial"), (cache.locks_dir(model_slug, rev_dir), "lock")]
        if FULL_COMMIT_RE.match(rev_dir):
            candidates.append((cache.pinned_manifest_path(model_slug, rev_dir), "pinned-manifest"))
        for path, kind in candidates:
            if path.exists():
                report.removed.append(Removal(str(path), kind, _size(path)))
    if not dry_run:
        _carry_out(report)
    return report


def gc(cache: Cache, dry_run: bool = False, now: float | None = None) -> CleanReport:
    """Partial downloads nobody is fetching, rejected copies, records of removed models and stale
    temp files. Lock files stay: deleting one that a starting pull has just opened would let two
    processes each hold "the" lock (they are empty files)."""
    report = CleanReport("cache gc", dry_run)
    now = now or time.time()
    partial = cache.partial_root()
    if partial.is_dir():
        for path in sorted(partial.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(partial).as_posix()
            if rel.endswith(".rejected"):
                report.removed.append(Removal(str(path), "rejected", _size(path)))
                continue
            base = rel[:-len(".part.json")] if rel.endswith(".part.json") else rel[:-len(".part")] \
                if rel.endswith(".part") else None
            if base is None:
                report.removed.append(Removal(str(path), "temp", _size(path)))
                continue
            with _unless_locked(cache.part_lock_path(base)) as free:
                if free:
                    report.removed.append(Removal(str(path), "partial", _size(path)))
                else:
                    report.skipped.append(f"{path}: a pull holds it")
    records = cache.records_root()
    if records.is_dir():
        for path in sorted(records.glob("*/*.json")):
            if path.parent.name == "_dirs":
                continue
            if not cache.cached_dir(path.parent.name, path.stem).is_dir():
                report.removed.append(Removal(str(path), "orphan-records", _size(path)))
    for base in (cache.records_root(), cache.pinned_dir(), cache.models_dir()):
        if base.is_dir():
            for path in base.rglob(".*.tmp"):
                if now - path.lstat().st_mtime > 3600:  # an atomic write that died, not one in flight
                    report.removed.append(Removal(str(path), "temp", _size(path)))
    if not dry_run:
        _carry_out(report)
        for area in (cache.partial_root(), cache.locks_root(), cache.records_root(), cache.models_dir()):
            _prune_empty(area)
    return report


def _carry_out(report: CleanReport) -> None:
    for r in report.removed:
        path = Path(r.path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        _prune_empty(path.parent, stop_at_depth=True)


def _prune_empty(top: Path, stop_at_depth: bool = False) -> None:
    """Remove empty directories under ``top`` (bottom-up), or ``top`` and its empty parents."""
    if stop_at_depth:
        for parent in (top, top.parent):
            try:
                parent.rmdir()
            except OSError:
                return
        return
    if not top.is_dir():
        return
    for root, dirs, files in os.walk(top, topdown=False):
        if root != str(top) and not dirs and not files:
            try:
                os.rmdir(root)
            except OSError:
                pass


__all__ = ["CacheListing", "CachedModel", "CleanReport", "Removal", "RemovalKind", "gc", "list_models", "listing",
           "remove"]
