"""Listings pinned in the cache: what ``pull ORG/REPO[@REV]`` learned a revision resolves to and
which files it has, kept as a manifest per commit plus a map of revision names to commits, so a
later verify, an offline pull or a pull when the hub is down needs no network.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from . import manifest as mf
from .cache import Cache, slug
from .fsutil import atomic_write, read_json_object

HUB_SOURCES = {
    "hub-lfs": "the hub's LFS sha256 for the file at the pinned commit (model API listing)",
    "hub-git": "the hub's git blob id for the file at the pinned commit (model API listing)",
}


def pinned(cache: Cache, repo: str, rev: str | None) -> mf.Manifest | None:
    """A manifest pinned by an earlier pull of ``repo`` at ``rev`` (latest pull when rev is None)."""
    refs = read_json_object(cache.pinned_refs_path())
    entry = refs.get(f"{repo}@{rev}") if rev else max(
        (v for k, v in refs.items() if k.split("@", 1)[0] == repo), key=lambda v: v["time"], default=None)
    commit = entry["commit"] if entry else rev if rev and mf.FULL_COMMIT_RE.match(rev) else None
    if not commit:
        return None
    path = cache.pinned_manifest_path(slug(repo), commit)
    return mf.load(path) if path.is_file() else None


def store_pin(cache: Cache, repo: str, rev: str | None, m: mf.Manifest) -> mf.Manifest:
    """Record ``m`` (a validated pin of ``repo`` at its commit) as what ``rev`` resolves to."""
    commit = m.revision
    path = cache.pinned_manifest_path(slug(repo), commit)
    cache.ensure_dir(path.parent)
    atomic_write(path, mf.to_toml(m).encode())
    refs = read_json_object(cache.pinned_refs_path())
    refs[f"{repo}@{rev or 'main'}"] = {"commit": commit, "time": time.time()}
    atomic_write(cache.pinned_refs_path(), json.dumps(refs, indent=1).encode())
    return replace(m, origin=str(path))


__all__ = ["HUB_SOURCES", "pinned", "store_pin"]
