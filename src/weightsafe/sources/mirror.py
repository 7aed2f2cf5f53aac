"""A static mirror: a tree ``mirror export`` wrote, served by nginx, a CDN or a bucket. It has no
listing API; its listing is the manifest it publishes at
``{repo}/resolve/{revision}/.weightsafe/manifest.toml``, read back as a pin of that repo at its
commit. The bytes come through the serving source (HTTP or S3) like any other file's, and are
checked against that manifest's digests.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from .. import manifest as mf
from ..errors import HubError
from ..layout import MANIFEST_NAME, META, manifest_relpath
from .base import Published

#: A published manifest is read whole into memory: bounded, so a hostile mirror cannot exhaust it
#: (a 30,000-file repo's manifest is about 6 MB).
MAX_MANIFEST = 64 * 1024 * 1024


class _Serving(Protocol):
    endpoint: str

    def read_small(self, repo: str, revision: str, path: str, limit: int | None = None) -> bytes | None: ...


class StaticMirror:
    """The published-manifest view of a source that serves files but lists nothing."""

    def __init__(self, serving: _Serving):
        self.serving = serving

    def published(self, repo: str, revision: str, why: str) -> Published | None:
        """The manifest published for ``repo`` at ``revision``, re-keyed as a pin of ``repo`` at its
        commit (so its files are fetched from ``resolve/{commit}``); None when there is none.
        ``why`` says why a listing API was not used (what the endpoint answered instead)."""
        raw = self.serving.read_small(repo, revision, f"{META}/{MANIFEST_NAME}", limit=MAX_MANIFEST + 1)
        if raw is None:  # no mirror here: the caller reports why the hub's API failed
            return None
        where = manifest_relpath(repo, revision)
        origin = f"{self.serving.endpoint}/{where}"
        if len(raw) > MAX_MANIFEST:
            raise HubError(f"{origin}: larger than {MAX_MANIFEST} bytes; not a manifest weightsafe wrote")
        m = mf.parse(raw, origin)
        commit = m.revision if m.pinned else m.commit
        if m.repo != repo or not commit or not mf.FULL_COMMIT_RE.match(commit):
            raise HubError(f"{origin}: describes {m.repo}@{commit or m.revision}, not a pin of {repo}; "
                           f"the mirror is inconsistent")
        if mf.FULL_COMMIT_RE.match(revision) and revision != commit:
            raise HubError(f"{origin}: pins commit {commit}, not {revision}; the mirror is inconsistent")
        return Published(replace(m, name=repo, revision=commit, commit=None), why, where)


__all__ = ["StaticMirror"]
