"""The one shape every target has: ``place`` a verified file, then ``finish`` the model.

A target is opened (``open_target``) for one model at one commit, because most targets name
their paths by it (``snapshots/<commit>/``, ``{repo}/resolve/{commit}/``); ``place`` then needs
only the file, and ``finish`` writes what a consumer of the destination needs beyond the files
(refs, the manifest, records, an alias), so a reader never finds a manifest before its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Protocol

from ..manifest import FileEntry
from ..records import FileRecord

PRESENT = "present"  # the method of a file that was already there with the same bytes
#: How a file got to a target; what it cost: a reflink or hard link no space, a copy its size,
#: a rename (the own cache) nothing, an upload its bytes over the network, present nothing at all.
PlacementMethod = Literal["reflink", "hardlink", "copy", "rename", "upload", "present"]


@dataclass(frozen=True)
class Placement:
    """Where one verified file was placed, and how (which says what it cost in disk space, or
    whether anything was sent at all)."""

    path: str      # the file's path inside the model
    target: str    # where it now is: an absolute path, or an s3:// URL
    method: PlacementMethod

    def to_dict(self) -> dict:
        return {"path": self.path, "target": self.target, "method": self.method}


@dataclass(frozen=True)
class Finished:
    """What ``Target.finish`` wrote, for the report: where a consumer finds the model, the
    manifest beside it (if the destination keeps one), revision aliases, and notes."""

    location: str                  # the directory to load from, or the mirror root to serve
    manifest: str | None = None    # the manifest written (a path or an s3:// URL); None if none is kept
    aliases: tuple[str, ...] = ()  # revision names now pointing at the commit
    notes: tuple[str, ...] = ()    # what a user should know (a ref that was created, a limitation)
    endpoint: str | None = None    # what nodes pass as --endpoint, when the destination is one itself (a bucket)


class Target(Protocol):
    """A destination for one model's verified files (see ``open_target``)."""

    root: str     # where the target writes: a directory, or s3://bucket/prefix
    workers: int  # how many ``place`` calls may run at once (1: local links are cheaper than threads)

    def place(self, entry: FileEntry, src: Path, record: FileRecord | None) -> Placement:
        """Make the verified file ``src`` (the bytes of ``entry``, proven as ``record`` says) appear
        at the target, atomically: a reader sees no file or the whole verified file."""
        ...

    def finish(self) -> Finished:
        """After every ``place``: write the refs, manifest, records and aliases that make the
        placed files a model a consumer can find."""
        ...


def place_all(target: Target, files: Iterable[tuple[FileEntry, Path, FileRecord | None]]) -> list[Placement]:
    """``target.place`` for each (entry, source, record), ``target.workers`` at a time; the
    placements come back in the order of ``files``."""
    files = list(files)
    if target.workers <= 1 or len(files) <= 1:
        return [target.place(*f) for f in files]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=target.workers) as pool:
        return list(pool.map(lambda f: target.place(*f), files))


__all__ = ["Placement", "Finished", "Target", "place_all", "PRESENT"]
