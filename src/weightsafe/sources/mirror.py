"""A static mirror's published manifest: what a tree exported by ``mirror export`` (served by nginx,
a CDN or a bucket) says about a repo at a revision, read back as a pin of that repo."""

from __future__ import annotations

from dataclasses import replace

from .. import manifest as mf
from ..errors import HubError
from ..layout import MANIFEST_NAME, META, manifest_relpath


def fetch_manifest(client, repo: str, revision: str) -> mf.Manifest | None:
    """The manifest a mirror publishes for ``repo`` at ``revision``, re-keyed as a pin of ``repo``
    at its commit (so its files are fetched from ``resolve/{commit}``); None when it has none."""
    relpath = f"{META}/{MANIFEST_NAME}"
    getter = getattr(client, "read_small", None)
    if getter is not None:  # object storage
        raw = getter(repo, revision, relpath)
    else:
        url = client.file_url(repo, revision, relpath)
        resp = client.request("GET", url, headers={"Accept-Encoding": "identity"}, what=f"{repo}@{revision}: "
                              f"mirror manifest")
        with resp:
            if resp.status_code >= 400:  # no mirror here: the caller reports why the hub's API failed
                return None
            raw = resp.content
    if raw is None:
        return None
    origin = f"{client.endpoint}/{manifest_relpath(repo, revision)}"
    m = mf.parse(raw, origin)
    commit = m.revision if m.pinned else m.commit
    if m.repo != repo or not commit or not mf.FULL_COMMIT_RE.match(commit):
        raise HubError(f"{origin}: describes {m.repo}@{commit or m.revision}, not a pin of {repo}; "
                       f"the mirror is inconsistent")
    if mf.FULL_COMMIT_RE.match(revision) and revision != commit:
        raise HubError(f"{origin}: pins commit {commit}, not {revision}; the mirror is inconsistent")
    return replace(m, name=repo, revision=commit, commit=None)


__all__ = ["fetch_manifest"]
