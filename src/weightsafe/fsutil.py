"""File-system primitives every layer above shares: atomic writes, fsync of a directory, opening
without following links, and refusing what an attacker planted at a path we are about to write.

They know nothing of caches or manifests, so the cache, the sources' part files and the targets'
placements all use the same few guarded operations.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from .errors import DiskError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``, or {} when it is missing or unreadable (state files are hints)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def refuse_planted(path: Path) -> None:
    """Refuse to write through something planted at a cache path we are about to open: a symlink
    (the write would land wherever it points), a hard link (it would change another file too) or
    anything but a regular file. Says what was found; the user removes it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise DiskError(f"{path} is a symlink (to {os.readlink(path)}), not a file the cache wrote: "
                        f"refusing to write through it; remove it")
    if not stat.S_ISREG(st.st_mode):
        raise DiskError(f"{path} is not a regular file: refusing to use it; remove it")
    if st.st_nlink > 1:
        raise DiskError(f"{path} has {st.st_nlink} hard links, so writing it would change another file: "
                        f"refusing; remove it")


def nofollow(path, flags: int) -> int:
    """An ``opener`` for open(): never follows a symlink at the last path component."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


__all__ = ["atomic_write", "fsync_dir", "nofollow", "read_json_object", "refuse_planted"]
