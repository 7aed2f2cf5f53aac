"""The one interface every source of bytes implements (``Source``), and the values it answers
with: what it says of one file before any byte moves (``RemoteFile``), a revision's listing
(``Listing``), or, where the endpoint has no listing API, the manifest it publishes (``Published``).

A use case (the puller, ``manifest create``) talks to a ``Source`` and never asks what kind it
is: the hub over HTTP, a static mirror behind nginx, an S3 bucket. ``open_source`` (this
package's ``__init__``) is the one place an endpoint's kind is decided.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from ..manifest import Manifest
    from .resume import PartFile, TransferResult


@dataclass(frozen=True)
class RemoteFile:
    """What a source says of one file before we download it."""

    path: str
    size: int | None
    etag: str | None          # the source's identity of this version (an HTTP ETag, an S3 ETag)
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


@dataclass(frozen=True)
class Listing:
    """Every file of a repo at the commit a revision resolved to, as the hub's API lists them."""

    commit: str
    entries: tuple[RemoteEntry, ...]


@dataclass(frozen=True)
class Published:
    """The manifest a static mirror publishes in place of a listing, and why the listing API was
    not used (what the endpoint answered instead)."""

    manifest: Manifest
    why: str
    where: str  # the manifest's path under the endpoint


class Source(Protocol):
    """Where a pull's bytes come from."""

    endpoint: str
    offline: bool

    def stat(self, repo: str, revision: str, path: str) -> RemoteFile:
        """Size and validators of one file, without its bytes."""

    def listing(self, repo: str, revision: str) -> Listing | Published:
        """The files of ``repo`` at ``revision``: the hub's listing, or a mirror's manifest."""

    def download(self, repo: str, revision: str, path: str, part: PartFile, algs: tuple[str, ...],
                 size: int | None, expect: str | None, *, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None, buffers: int | None = None,
                 keep_cache: bool = False) -> TransferResult:
        """Fetch one file into ``part`` (resuming what it holds), through hashers for ``algs``."""

    def read_small(self, repo: str, revision: str, path: str, limit: int | None = None) -> bytes | None:
        """A small file (a card, a manifest), at most ``limit`` bytes of it; None when the source
        has no such file."""


__all__ = ["Listing", "Published", "RemoteEntry", "RemoteFile", "Source"]
