"""Mirror export: copy a model verified in the cache to a tree any static file server (nginx, a CDN,
an S3 bucket) can serve in the hub's URL layout (targets/mirror_dir.py, targets/s3.py); pulling
from such a tree reads its published manifest (sources/mirror.py).

Layout, the same under a directory and under ``s3://bucket/prefix``::

    {repo}/resolve/{commit}/{path}                        the model's files, byte for byte
    {repo}/resolve/{commit}/.weightsafe/manifest.toml     the manifest they were verified against
    {repo}/resolve/{revision} -> {commit}                 the revision name (``main``) as an alias:
                                                          a relative symlink in a directory; in a
                                                          bucket only the manifest is copied there

``pull ORG/REPO[@REV] --endpoint MIRROR`` needs no hub API: when the endpoint does not answer the
hub's listing, the manifest is fetched from ``resolve/{REV}/.weightsafe/manifest.toml`` and every
file is still checked against its digests. A manifest or signature the puller already holds
(``--manifest``, a NAME on the search path) is never replaced by the mirror's: then the mirror
serves bytes only, and cannot forge them.

A directory export is atomic per file (placed under a temporary name, then renamed), writes the
manifest only after every file is in place (a tree with a manifest is complete), and is
resumable and idempotent: files already exported with the same fingerprint are left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import catalog
from . import manifest as mf
from .errors import IntegrityError, NotCachedError
from .locate import Context, locate
from .records import FileRecord
from .targets import Placement, open_target, place_all
from .targets.base import PRESENT
from .verify import verify_directory

EXPORT_SOURCE = "mirror-export"


@dataclass(frozen=True)
class Verified:
    """A model as it is verified in the cache: the manifest to publish, its commit, its files."""

    manifest: mf.Manifest
    commit: str
    directory: Path
    records: dict[str, FileRecord]

    def source(self, path: str) -> Path:
        return self.directory / path

    def fingerprint(self, path: str) -> str | None:
        record = self.records.get(path)
        return record.fingerprint if record else None


@dataclass
class ExportReport:
    """What ``mirror export`` did: every file's placement, where the manifest and aliases are."""

    name: str
    repo: str
    commit: str
    destination: str
    manifest: str
    aliases: list[str] = field(default_factory=list)
    files: list[Placement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: what nodes pass as ``--endpoint``: the bucket itself, or None for a directory a server must serve
    endpoint: str | None = None

    ok = True
    exit_code = 0

    @property
    def changed(self) -> int:
        return sum(f.method != PRESENT for f in self.files)

    def to_dict(self) -> dict:
        return {"command": "mirror export", "ok": True, "name": self.name, "repo": self.repo,
                "commit": self.commit, "destination": self.destination, "manifest": self.manifest,
                "aliases": self.aliases, "changed": self.changed, "notes": self.notes,
                "files": [f.to_dict() for f in self.files]}


def verified_in_cache(name: str, revision: str | None = None, *, cache_dir=None, settings=None,
                      jobs: int | None = None) -> Verified:
    """The model NAME as verified in the cache now; refuses (exit 1) anything that is not."""
    ctx = Context.make(cache_dir=cache_dir, settings=settings)
    if catalog.is_repo_spec(name):
        repo, rev = catalog.split_spec(name)
        if catalog.pinned(ctx.cache, repo, revision or rev) is None:
            raise NotVerifiedError(f"{name} is not in the cache {ctx.cache.root}; run `weightsafe pull {name}`; "
                                   f"only a model verified in the cache can be exported")
    try:
        where = locate(ctx, name, revision=revision)
    except NotCachedError as e:
        raise NotVerifiedError(f"{e}; only a model verified in the cache can be exported") from None
    m = where.manifest
    assert m is not None and where.records is not None  # locate() of a cached model has both
    report = verify_directory(m, where.directory, where.records, jobs=jobs)
    if not report.ok:
        bad = report.failures[0]
        raise NotVerifiedError(f"{m.name} does not verify in the cache ({bad.path}: {bad.status}; "
                               f"{len(report.failures)} file(s) failed); run `weightsafe pull {m.name}` "
                               f"and export again")
    recorded = where.records.model()
    commit = m.revision if m.pinned else recorded.commit
    if not isinstance(commit, str) or not mf.FULL_COMMIT_RE.match(commit):
        raise NotVerifiedError(f"{m.name}: the commit {m.revision} resolves to is unknown (the server sent "
                               f"none), so it has no place in the hub's URL layout")
    records = recorded.files
    return Verified(published(m, commit, records), commit, where.directory, records)


class NotVerifiedError(IntegrityError):
    """The model is not (or no longer) verified in the cache: a mirror must not spread it."""


def published(m: mf.Manifest, commit: str, records: dict[str, FileRecord]) -> mf.Manifest:
    """The manifest a mirror serves: pinned to ``commit``, and every file carrying the digests it
    was verified against at pull time (the hub's HEAD digests included), so that a puller that
    has nothing but the mirror can still check every byte."""
    sources = dict(m.sources)
    files = []
    for f in m.files:
        record = records.get(f.path)
        extra = []
        for alg, hexd in (record.digests if record else {}).items():
            src = record.sources.get(alg) or EXPORT_SOURCE
            if alg in mf.ALGORITHMS and mf.SOURCE_RE.match(src):
                extra.append(mf.Digest(alg, hexd, src))
                sources.setdefault(src, _describe_source(src))
        files.append(replace(f, digests=f.supplemented(extra), size=f.size if f.size is not None
                             else record.stat.size if record else None))
    commit_field = None if m.pinned else commit
    out = replace(m, files=tuple(files), sources=sources, commit=commit_field)
    return mf.parse(mf.to_toml(out), f"<published {m.name}@{commit}>")


def _describe_source(src: str) -> str:
    return {"hub-head": "the hub's X-Linked-Etag / ETag at download time (verified by weightsafe)",
            EXPORT_SOURCE: "digest verified by weightsafe when the model was pulled"}.get(
        src, f"digest verified by weightsafe when the model was pulled ({src})")


# ---------------------------------------------------------------- exporting

def export(name: str, destination: str | os.PathLike, *, revision: str | None = None, cache_dir=None,
           alias: str | None = None, jobs: int | None = None, settings=None) -> ExportReport:
    """Export the verified model NAME (a manifest name or ``org/repo[@rev]``) to ``destination``:
    a directory, or ``s3://bucket/prefix``. Returns what was written; re-running it is a no-op."""
    v = verified_in_cache(name, revision, cache_dir=cache_dir, settings=settings, jobs=jobs)
    alias = alias if alias is not None else _alias_for(v.manifest, revision, name)
    target = open_target(destination, manifest=v.manifest, commit=v.commit, alias=alias, jobs=jobs,
                         settings=settings)
    m = v.manifest
    files = place_all(target, ((f, v.source(f.path), v.records.get(f.path)) for f in m.files))
    done = target.finish()
    return ExportReport(m.name, m.repo, v.commit, target.root, done.manifest or "", list(done.aliases), files,
                        list(done.notes), done.endpoint)


def _alias_for(m: mf.Manifest, revision: str | None, name: str) -> str | None:
    """The revision name to alias: ``main`` for a pin of the default branch, else the name pulled."""
    rev = revision or (name.partition("@")[2] if "@" in name else None) or (None if m.pinned else m.revision)
    if rev is None:
        rev = "main"
    return None if mf.FULL_COMMIT_RE.match(rev) else rev


__all__ = ["export", "verified_in_cache", "published", "ExportReport", "Verified", "NotVerifiedError"]
