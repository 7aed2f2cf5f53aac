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
from .placement import Placement, place, swap_symlink

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
    """One repo's folder in one hub cache."""

    hub_cache: Path
    repo: str

    @property
    def root(self) -> Path:
        return self.hub_cache / repo_folder_name(self.repo)

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

    # ------------------------------------------------------------------ write
    def place(self, relpath: str, src: Path, commit: str, digests: dict[str, str],
              fingerprint: str | None) -> Placement:
        """Put the verified file ``src`` in this cache as ``relpath`` at ``commit``."""
        check_relpath(relpath)
        name = blob_name(digests) or hash_file(src, ("sha256",))["sha256"]
        blob = self.root / "blobs" / name
        method = place(src, blob, self.root / "blobs", fingerprint)
        link = self.snapshot(commit) / relpath
        target = os.path.relpath(blob, link.parent)
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() and os.readlink(link) == target:
                return Placement(relpath, str(link), method)
            swap_symlink(link, target)
        except OSError as e:
            raise DiskError(f"cannot write {link}: {e.strerror or e}") from None
        return Placement(relpath, str(link), method)

    def set_ref(self, revision: str, commit: str, overwrite: bool = True) -> bool:
        """Point ``refs/<revision>`` at ``commit`` (huggingface_hub keeps no ref for a commit itself)."""
        if revision == commit or FULL_COMMIT_RE.match(revision):
            return False
        path = self.ref(revision)
        if not overwrite and path.exists():
            return False
        try:
            if path.exists() and path.read_text().strip() == commit:
                return False
            atomic_write(path, commit.encode())
        except OSError as e:
            raise DiskError(f"cannot write {path}: {e.strerror or e}") from None
        return True

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


__all__ = ["HFRepoCache", "repo_folder_name", "blob_name", "HF_BLOB_SOURCE"]
