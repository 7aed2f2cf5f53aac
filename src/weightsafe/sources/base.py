"""What a source says about files before any byte moves: one file's size and validators
(``RemoteFile``), and a revision's listing (``RemoteEntry``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """What the hub says of one file before we download it."""

    path: str
    size: int | None
    etag: str | None          # the validator to send back as If-Range (quoted form kept)
    sha256: str | None        # X-Linked-Etag of an LFS file
    git_sha1: str | None      # ETag of a regular file
    commit: str | None        # X-Repo-Commit

    @property
    def hub_digests(self) -> dict[str, str]:
        out = {}
        if self.sha256:
            out["sha256"] = self.sha256
        if self.git_sha1:
            out["git-sha1"] = self.git_sha1
        return out


@dataclass(frozen=True)
class RemoteEntry:
    """A file in a listing from the hub's API."""

    path: str
    size: int | None
    sha256: str | None
    git_sha1: str | None


__all__ = ["RemoteEntry", "RemoteFile"]
