"""The hub's URL layout, as a mirror reproduces it: where a file and a published manifest live
under ``{repo}/resolve/{revision}/``. One place, so the static-mirror source, the directory and
bucket targets and the hub client can never spell it differently.
"""

from __future__ import annotations

META = ".weightsafe"
MANIFEST_NAME = "manifest.toml"


def manifest_relpath(repo: str, revision: str) -> str:
    """Where a mirror keeps the manifest of ``repo`` at ``revision`` (a commit or an alias)."""
    return f"{repo}/resolve/{revision}/{META}/{MANIFEST_NAME}"


def file_relpath(repo: str, commit: str, path: str) -> str:
    return f"{repo}/resolve/{commit}/{path}"


__all__ = ["META", "MANIFEST_NAME", "manifest_relpath", "file_relpath"]
