"""What weightsafe knows of: the models it has manifests for (``list``), and one manifest in full
(``show``), as typed reports. The CLI prints them as text or as their ``to_dict()``; a script
calling the API gets the same facts without parsing either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import catalog
from .cache import Cache
from .manifest import Manifest


@dataclass(frozen=True)
class ModelEntry:
    """One manifest on the search path, and whether its revision is in the cache."""

    name: str
    repo: str
    revision: str
    files: int
    bytes: int
    cached: bool
    manifest: str  # the file it was read from

    def to_dict(self) -> dict:
        return {"name": self.name, "repo": self.repo, "revision": self.revision, "files": self.files,
                "bytes": self.bytes, "cached": self.cached, "manifest": self.manifest}


@dataclass(frozen=True)
class ModelList:
    """``weightsafe list``: every model with a manifest, first manifest of each name winning."""

    models: tuple[ModelEntry, ...]

    ok = True
    exit_code = 0

    def to_dict(self) -> dict:
        return {"command": "list", "ok": True, "models": [m.to_dict() for m in self.models]}


def available_models(cache: Cache, dirs: Sequence[Path]) -> ModelList:
    """Every valid manifest in ``dirs``, each with whether ``cache`` holds its revision."""
    return ModelList(tuple(
        ModelEntry(m.name, m.repo, m.revision, len(m.files), m.known_bytes,
                   cache.model_dir(m.name, m.revision).is_dir(), str(path))
        for m, path in catalog.available(dirs)))


@dataclass(frozen=True)
class ManifestReport:
    """``weightsafe show``: one manifest, and what it leaves unknown (files a pull can only check
    against the hub's own digests, files whose exact size it does not give)."""

    manifest: Manifest

    ok = True
    exit_code = 0

    @property
    def unknown_digests(self) -> list[str]:
        return [f.path for f in self.manifest.files if not f.digests]

    @property
    def unknown_sizes(self) -> list[str]:
        return [f.path for f in self.manifest.files if f.size is None]

    def to_dict(self) -> dict:
        m = self.manifest
        return {"command": "show", "ok": True, "name": m.name, "repo": m.repo, "revision": m.revision,
                "pinned": m.pinned, "commit": m.commit, "manifest": m.origin, "sources": m.sources,
                "notes": list(m.notes),
                "files": [{"path": f.path, "size": f.size, "size_approx": f.size_approx,
                           "digests": [{"alg": d.alg, "hex": d.hex, "source": d.source} for d in f.digests]}
                          for f in m.files],
                "unknown_digests": self.unknown_digests, "unknown_sizes": self.unknown_sizes}


__all__ = ["ManifestReport", "ModelEntry", "ModelList", "available_models"]
