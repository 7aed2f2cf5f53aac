"""Where verified files go: weightsafe's own cache, the Hugging Face cache, a deploy directory, a
mirror directory, an S3 prefix. Every one is a ``Target`` (``base.py``): ``place`` each verified
file, then ``finish`` the model; ``open_target`` is the one place that decides which kind::

    target = open_target("/srv/www", manifest=m, commit=commit)   # a mirror directory
    placements = place_all(target, ((f, cache_dir / f.path, records.get(f.path)) for f in m.files))
    target.finish().manifest   # '/srv/www/org/name/resolve/<commit>/.weightsafe/manifest.toml'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotCachedError, UsageError
from ..manifest import FULL_COMMIT_RE
from .base import Finished, Placement, Target, place_all

if TYPE_CHECKING:
    from ..cache import Cache
    from ..manifest import Manifest
    from ..settings import Settings

PathLike = str | os.PathLike


def open_target(dest: PathLike | None = None, *, manifest: Manifest, commit: str | None = None,
                local_dir: PathLike | None = None, hf_cache: PathLike | None = None, cache: Cache | None = None,
                alias: str | None = None, jobs: int | None = None, settings: Settings | None = None,
                keep_cache: bool = False) -> Target:
    """The target for one model (``manifest``) at one ``commit``; give exactly one destination:

    - ``dest``: a mirror in the hub's URL layout: ``s3://bucket/prefix``, or else a directory
      (any other ``scheme://`` is refused); ``alias`` names the revision to point at the commit,
      ``jobs`` the uploads at once;
    - ``local_dir``: a deploy directory (``pull --local-dir``);
    - ``hf_cache``: a Hugging Face hub cache directory (``pull --hf-cache``);
    - ``cache``: weightsafe's own cache (the puller commits verified parts through it).

    Nothing is written, and no directory created, until ``place``.
    """
    given = [k for k, v in (("dest", dest), ("local_dir", local_dir), ("hf_cache", hf_cache), ("cache", cache))
             if v is not None]
    if len(given) != 1:
        raise TypeError(f"open_target takes exactly one destination, got {given or 'none'}")
    if cache is not None:
        from .cache import CacheTarget

        return CacheTarget(cache, manifest, keep_cache)
    if local_dir is not None:
        from .localdir import LocalDirTarget

        return LocalDirTarget(Path(local_dir), manifest, commit)
    if hf_cache is not None:
        from .hfcache import HFCacheTarget

        return HFCacheTarget(Path(hf_cache), manifest, _commit(commit, manifest, "the Hugging Face cache"))
    url = os.fspath(dest)
    if url.startswith("s3://"):
        from .s3 import S3Target

        return S3Target(url, manifest, _commit(commit, manifest, "a mirror"), alias, jobs, settings)
    if "://" in url:
        raise UsageError(f"mirror destination {url!r}: give a directory or s3://bucket/prefix")
    from .mirror_dir import MirrorDirTarget

    return MirrorDirTarget(Path(url), manifest, _commit(commit, manifest, "a mirror"), alias)


def _commit(commit: str | None, manifest: Manifest, where: str) -> str:
    """The commit a target that names paths by it needs; refused when the server sent none, or
    sent something that is not a commit hash (it becomes a directory name)."""
    if not commit:
        raise NotCachedError(f"{manifest.name}: the commit that {manifest.revision} resolves to is unknown (the "
                             f"server sent no X-Repo-Commit), so it has no place in {where}")
    if not FULL_COMMIT_RE.match(commit):
        raise NotCachedError(f"{manifest.name}: {commit[:80]!r} is not a full commit hash, so it has no place "
                             f"in {where}")
    return commit


__all__ = ["open_target", "Target", "Placement", "Finished", "place_all"]
