"""Put a verified file somewhere else (a deploy directory, the Hugging Face cache) without
storing its bytes twice where the file system allows it, and without ever showing a partial file.

Order of preference: a reflink (copy-on-write clone: shares blocks, yet a later write to one copy
cannot change the other), then a hard link (shares the inode: no extra byte, and the recorded
fingerprint still catches a write through either name), then a copy, hashed as it is written and
compared with the source's fingerprint before it becomes visible. The new name appears by an
atomic rename from a temporary name in ``tmp_dir``, which must be on the destination's file system.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path

import xxhash

from ..errors import DiskError, IntegrityError
from ..fsutil import fsync_dir
from .base import PRESENT, Placement  # Placement: re-exported for puller.py's import

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
COPY_CHUNK = 8 * 1024 * 1024
REFLINK, HARDLINK, COPY = "reflink", "hardlink", "copy"


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _reflink(src: Path, dst: Path) -> bool:
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        return True
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM, errno.EBADF):
            _unlink(dst)
            return False
        raise


def _hardlink(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.EACCES):
            return False
        raise


def _copy(src: Path, dst: Path, fingerprint: str | None) -> None:
    """Copy and hash in one pass; a copy whose bytes differ from the verified source never lands."""
    h = xxhash.xxh3_128()
    with open(src, "rb") as s, open(dst, "wb") as d:
        while chunk := s.read(COPY_CHUNK):
            d.write(chunk)
            h.update(chunk)
        d.flush()
        os.fsync(d.fileno())
    if fingerprint and h.hexdigest() != fingerprint:
        raise IntegrityError(f"{src}: the copy to {dst} did not read back the verified bytes "
                             f"(xxh3-128 {h.hexdigest()}, expected {fingerprint}); the cached file changed")


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def place(src: Path, dst: Path, tmp_dir: Path, fingerprint: str | None = None,
          allow_links: bool = True) -> str:
    """Make ``dst`` hold the verified bytes of ``src``; returns the method used.

    ``fingerprint`` (xxh3-128 of ``src``) guards a copy. A ``dst`` that already is ``src`` is left
    alone; any other ``dst`` is replaced atomically (a reader sees the old file or the new one).
    """
    if same_file(src, dst):
        return PRESENT
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=".place-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            _unlink(tmp)  # mkstemp reserved a unique name; link() needs it free
            if _reflink(src, tmp):
                method = REFLINK
            elif allow_links and _hardlink(src, tmp):
                method = HARDLINK
            else:
                _copy(src, tmp, fingerprint)
                method = COPY
            os.replace(tmp, dst)
        except BaseException:
            _unlink(tmp)
            raise
        fsync_dir(dst.parent)
    except OSError as e:
        raise DiskError(f"cannot place {dst}: {e.strerror or e}") from None
    return method


def swap_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` by an atomic rename: a reader sees the old target or the new
    one, never no link. Raises OSError; the caller names what failed."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


__all__ = ["Placement", "place", "same_file", "swap_symlink", "REFLINK", "HARDLINK", "COPY", "PRESENT"]
