"""Which files a command is about: the settings and cache of one call (``Context``), the manifest a
name means, and where its files are (``locate``): the cache, a deploy directory, any directory or
the Hugging Face cache. Every use case starts here, so each resolves a name the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import catalog
from .cache import Cache
from .errors import NotCachedError, UsageError
from .manifest import Manifest
from .progress import Progress
from .records import Records
from .settings import Settings

if TYPE_CHECKING:  # the HTTP stack (requests, ~0.3 s to import) loads only for commands that use it
    from .sources.base import Source

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Context:
    """Settings, cache and manifest search path for one call."""

    settings: Settings
    cache: Cache

    @classmethod
    def make(cls, *, endpoint: str | None = None, cache_dir: PathLike | None = None, offline: bool = False,
             settings: Settings | None = None) -> "Context":
        s = (settings or Settings.from_env()).with_overrides(endpoint=endpoint, cache_dir=cache_dir,
                                                              offline=offline)
        return cls(s, Cache(s.cache_root))

    @property
    def dirs(self) -> list[Path]:
        return catalog.search_dirs(self.settings.manifest_dirs)

    def source(self, progress: Progress | None = None) -> Source:
        """Where this call's bytes come from (the endpoint decides the kind: sources.open_source)."""
        from .sources import open_source

        return open_source(self.settings, on_retry=progress.retry if progress else None)

    def resolve(self, name: str | None, revision: str | None = None, manifest: PathLike | None = None,
                source: Source | None = None, notes: list[str] | None = None) -> Manifest:
        spec = repo_spec(name or "", revision)
        m = catalog.resolve(spec, self.cache, self.dirs, str(manifest) if manifest else None, source, notes)
        if revision and not catalog.is_repo_spec(spec) and revision not in (m.revision, m.commit):
            raise UsageError(f"{m.name} pins revision {m.revision}, not {revision}; edit the manifest to change it")
        return m


def repo_spec(name: str, revision: str | None) -> str:
    if not revision or not name or not catalog.is_repo_spec(name):
        return name
    if "@" in name:
        raise UsageError(f"{name!r} names a revision already; drop revision={revision!r} or the '@'")
    return f"{name}@{revision}"


@dataclass(frozen=True)
class Located:
    """The files a verify or check is about, what they are judged against, and where facts are kept."""

    manifest: Manifest | None
    directory: Path
    records: Records | None
    notes: tuple[str, ...] = ()


def locate(ctx: Context, name: str | None = None, *, revision: str | None = None,
           directory: PathLike | None = None, local_dir: PathLike | None = None, hf_cache: bool = False,
           manifest: PathLike | None = None, need_manifest: bool = True) -> Located:
    """Find the directory and manifest for NAME, ``directory``, ``local_dir`` or the HF cache."""
    if sum(bool(x) for x in (directory, local_dir, hf_cache)) > 1:
        raise UsageError("choose one of --dir, --local-dir and --hf-cache")
    named = ctx.resolve(name, revision, manifest) if (name or manifest) and not (
        hf_cache and name and catalog.is_repo_spec(name)) else None
    if directory:
        target = Path(directory)
        if need_manifest and named is None:
            raise UsageError("--dir needs --manifest PATH (or a model NAME) to compare against")
        if not target.is_dir():
            raise UsageError(f"--dir {directory}: not a directory")
        return Located(named, target, ctx.cache.dir_records(target))
    if local_dir:
        from .targets.localdir import LocalDir  # targets load only for the commands that read one

        ld = LocalDir(Path(local_dir)).require()
        stored = ld.manifest()
        m = _narrowed(named, [f.path for f in stored.files]) if named and stored else named or stored
        if m is None and need_manifest:
            raise UsageError(f"--local-dir {local_dir}: weightsafe never pulled into it (no {ld.manifest_path}); "
                             f"name the model or pass --manifest PATH")
        return Located(m, ld.root, ld.records)
    if hf_cache:
        return _locate_hf(ctx, name, revision, named)
    if named is None:
        raise UsageError("name a model, or pass --dir DIR, --local-dir DIR or --hf-cache")
    target = ctx.cache.model_dir(named.name, named.revision)
    if not target.is_dir():
        raise NotCachedError(f"{named.name} is not in the cache {ctx.cache.root}; run `weightsafe pull {named.name}`")
    records = ctx.cache.records(named.name, named.revision)
    return Located(_narrowed(named, records.model().pulled), target, records)


def _narrowed(m: Manifest, pulled: Sequence[str] | None) -> Manifest:
    """The manifest narrowed to what was pulled (say only the safetensors of a repo with both)."""
    return m.select(include=pulled) if pulled else m


def _locate_hf(ctx: Context, name: str | None, revision: str | None, named: Manifest | None) -> Located:
    if named is None and not name:
        raise UsageError("--hf-cache needs a model: NAME or ORG/REPO[@REV]")
    if named is not None:
        repo, rev = named.repo, named.revision
    else:
        repo, rev = catalog.split_spec(repo_spec(name or "", revision))
        rev = rev or "main"
    from .targets.hfcache import HFRepoCache

    repo_cache = HFRepoCache(ctx.settings.hf_hub_cache, repo)
    snapshot = repo_cache.snapshot_dir(rev)
    commit = snapshot.name
    notes: tuple[str, ...] = ()
    if named is not None:
        named = _narrowed(named, ctx.cache.records(named.name, named.revision).model().pulled)
    else:
        named = catalog.pinned(ctx.cache, repo, commit)
        if named is None:
            named = repo_cache.manifest_from_blobs(commit)
            notes = (f"no weightsafe manifest for {repo}@{commit[:12]}: checked against the digests the blobs are "
                     f"named by (the hub's ETags at download time)",)
    return Located(named, snapshot, ctx.cache.dir_records(snapshot), notes)


__all__ = ["Context", "Located", "locate", "repo_spec", "PathLike"]
