"""The Hugging Face hub cache, written and read exactly as ``huggingface_hub`` does.

    <HF_HUB_CACHE>/models--<org>--<name>/
        blobs/<etag>                      the bytes; etag = LFS sha256, or the git blob sha1
        snapshots/<commit>/<path>         relative symlink -> ../../blobs/<etag>
        refs/<revision>                   the commit a branch or tag name resolved to

so ``snapshot_download(repo, revision, local_files_only=True)`` and ``from_pretrained(repo)``
under ``HF_HUB_OFFLINE=1`` find what weightsafe verified. Only verified bytes are placed: blobs
come from weightsafe's cache (reflink or hard link where possible), then the snapshot link, then
the ref, each by an atomic rename, so an interrupted export leaves nothing half-made behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskError, NotCachedError
from ..fsutil import atomic_write
from ..hashing import hash_file
from ..manifest import FULL_COMMIT_RE, Digest, FileEntry, Manifest, check_relpath
from ..records import FileRecord
from .base import Finished, Placement
from .placement import place, swap_symlink

HF_BLOB_SOURCE = "hf-blob"
HF_BLOB_SOURCE_TEXT = ("the digest huggingface_hub named the blob by: the hub's ETag when it was downloaded "
                       "(LFS sha256, or git blob sha1 for small files)")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


def repo_folder_name(repo: str, repo_type: str = "model") -> str:
    """``org/name`` -> ``models--org--name``, huggingface_hub's own rule."""
    return "--".join([f"{repo_type}s", *repo.split("/")])


def blob_name(digests: dict[str, str]) -> str | None:
    """The name huggingface_hub gives a file's blob: its ETag, which the hub sets to the git blob
    sha1 for a regular file and the sha256 for an LFS file. None when neither is known."""
    return digests.get("git-sha1") or digests.get("sha256")


@dataclass(frozen=True)
class HFRepoCache:
    """One repo's folder in one hub cache: its paths, and what it holds (``resolve``,
    ``snapshot_dir``, ``manifest_from_blobs``); ``HFCacheTarget`` writes it."""

    hub_cache: Path
    repo: str

    @property
    def root(self) -> Path:
        return self.hub_cache / repo_folder_name(self.repo)

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    def snapshot(self, commit: str) -> Path:
        return self.root / "snapshots" / commit

    def ref(self, revision: str) -> Path:
        check_relpath(revision, "revision")
        return self.root / "refs" / revision

    def resolve(self, revision: str) -> str:
        """The commit a revision names in this cache (a full commit names itself)."""
        if FULL_COMMIT_RE.match(revision):
            return revision
        try:
            commit = self.ref(revision).read_text().strip()
        except (OSError, ValueError):
            raise NotCachedError(f"{self.repo}@{revision} is not in the Hugging Face cache {self.hub_cache} "
                                 f"(no refs/{revision}); pull it with --hf-cache first") from None
        if not FULL_COMMIT_RE.match(commit):
            raise NotCachedError(f"{self.ref(revision)}: does not hold a commit hash")
        return commit

    def snapshot_dir(self, revision: str) -> Path:
        snapshot = self.snapshot(self.resolve(revision))
        if not snapshot.is_dir():
            raise NotCachedError(f"{self.repo}@{revision}: no snapshot {snapshot} in the Hugging Face cache; "
                                 f"pull it with --hf-cache first")
        return snapshot

    # ------------------------------------------------------------------ read
    def manifest_from_blobs(self, revision: str) -> Manifest:
        """A manifest of a snapshot that a plain ``huggingface_hub`` download made, from the names
        of its blobs: what ``hf cache verify`` compares against, but offline."""
        commit = self.resolve(revision)
        snapshot = self.snapshot_dir(revision)
        files = []
        for root, dirs, names in os.walk(snapshot):
            dirs.sort()
            for n in sorted(names):
                full = Path(root) / n
                rel = full.relative_to(snapshot).as_posix()
                blob = os.path.basename(os.readlink(full)) if full.is_symlink() else ""
                digests = ()
                if SHA256_RE.match(blob):
                    digests = (Digest("sha256", blob, HF_BLOB_SOURCE),)
                elif SHA1_RE.match(blob):
                    digests = (Digest("git-sha1", blob, HF_BLOB_SOURCE),)
                files.append(FileEntry(rel, None, digests))
        if not files:
            raise NotCachedError(f"{snapshot}: the snapshot is empty")
        return Manifest(name=self.repo, repo=self.repo, revision=commit, files=tuple(files),
                        sources={HF_BLOB_SOURCE: HF_BLOB_SOURCE_TEXT},
                        description="read from the Hugging Face cache", origin=str(snapshot))


class HFCacheTarget:
    """The Hugging Face cache as a target: a blob per file (named as huggingface_hub names it),
    the snapshot's relative symlink to it, then on ``finish`` the ref of the revision pulled, so
    ``snapshot_download(repo, revision, local_files_only=True)`` finds the verified files."""

    workers = 1

    def __init__(self, hub_cache: Path, manifest: Manifest, commit: str):
        self.repo_cache = HFRepoCache(Path(hub_cache), manifest.repo)
        self.manifest = manifest
        self.commit = commit
        self.root = str(self.repo_cache.root)

    def place(self, entry: FileEntry, src: Path, record: FileRecord | None) -> Placement:
        """Put the verified file ``src`` in the cache as ``entry.path`` at the commit: the blob by
        reflink, hard link or checked copy, then the snapshot link, each by an atomic rename."""
        relpath = entry.path
        check_relpath(relpath)
        rc = self.repo_cache
        name = blob_name(record.digests if record else {}) or hash_file(src, ("sha256",))["sha256"]
        blob = rc.blobs / name
        method = place(src, blob, rc.blobs, record.fingerprint if record else None)
        link = rc.snapshot(self.commit) / relpath
        target = os.path.relpath(blob, link.parent)
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() and os.readlink(link) == target:
                return Placement(relpath, str(link), method)
            swap_symlink(link, target)
        except OSError as e:
            raise DiskError(f"cannot write {link}: {e.strerror or e}") from None
        return Placement(relpath, str(link), method)

    def finish(self) -> Finished:
        """``refs/<revision>`` names the commit; a pinned pull also gives a repo with no
        ``refs/main`` one (never moving an existing one), so ``from_pretrained(repo)`` works offline."""
        m, commit = self.manifest, self.commit
        notes = []
        self.set_ref(m.revision, commit)
        if m.pinned and self.set_ref("main", commit, overwrite=False):
            notes.append(f"refs/main of {m.repo} in the Hugging Face cache now names {commit[:12]} (there was "
                         f"none), so from_pretrained({m.repo!r}) finds it offline")
        return Finished(str(self.repo_cache.snapshot(commit)), notes=tuple(notes))

    def set_ref(self, revision: str, commit: str, overwrite: bool = True) -> bool:
        """Point ``refs/<revision>`` at ``commit`` (huggingface_hub keeps no ref for a commit itself)."""
        if revision == commit or FULL_COMMIT_RE.match(revision):
            return False
        path = self.repo_cache.ref(revision)
        if not overwrite and path.exists():
            return False
        try:
            if path.exists() and path.read_text().strip() == commit:
                return False
            atomic_write(path, commit.encode())
        except OSError as e:
            raise DiskError(f"cannot write {path}: {e.strerror or e}") from None
        return True


__all__ = ["HFRepoCache", "HFCacheTarget", "repo_folder_name", "blob_name", "HF_BLOB_SOURCE"]
