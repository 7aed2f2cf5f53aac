"""What was proven about files, kept beside them: a file's stat, its xxh3-128 fingerprint and the
digests it passed (``FileRecord``), and one JSON document of them per model directory (``Records``),
read as a ``ModelRecord`` (which model, which commit, which files were asked for).

Records are hints, not the truth: a record that does not parse is no record, and one whose stat
differs from the file's says nothing about it. The JSON form is unchanged from earlier releases.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .fsutil import atomic_write, read_json_object


@dataclass(frozen=True)
class Stat:
    """What identifies an unchanged file cheaply: size, mtime and inode."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path) -> "Stat":
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_map(value) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class FileRecord:
    """What was proven about one file and when: the stat it had, its xxh3-128 fingerprint, and
    the digests it passed with their sources. A hint, not the truth: a record that does not parse
    is no record (the file is hashed again), and one whose stat differs from the file's says
    nothing about it. The JSON form is unchanged from earlier releases, so caches carry over."""

    stat: Stat
    fingerprint: str | None
    digests: dict[str, str] = field(default_factory=dict)   # algorithm -> hex
    sources: dict[str, str] = field(default_factory=dict)   # algorithm -> where the digest came from
    verified_at: float | None = None

    @classmethod
    def passed(cls, stat: Stat, fingerprint: str, digests) -> "FileRecord":
        """A record for a file that just passed ``digests`` (manifest.Digest objects)."""
        return cls(stat, fingerprint, {d.alg: d.hex for d in digests}, {d.alg: d.source for d in digests},
                   round(time.time(), 3))

    @classmethod
    def from_json(cls, raw) -> "FileRecord | None":
        if not isinstance(raw, dict) or not all(_int(raw.get(k)) for k in ("size", "mtime_ns", "ino")):
            return None
        fingerprint, at = raw.get("xxh3-128"), raw.get("verified_at")
        return cls(Stat(raw["size"], raw["mtime_ns"], raw["ino"]),
                   fingerprint if isinstance(fingerprint, str) else None,
                   _str_map(raw.get("digests")), _str_map(raw.get("sources")),
                   float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None)

    def to_json(self) -> dict:
        out: dict = {"size": self.stat.size, "mtime_ns": self.stat.mtime_ns, "ino": self.stat.ino,
                     "xxh3-128": self.fingerprint}
        if self.digests or self.sources:
            out.update(digests=self.digests, sources=self.sources)
        if self.verified_at is not None:
            out["verified_at"] = self.verified_at
        return out

    def matches(self, stat: Stat) -> bool:
        """The file is the one this record is about (same size, mtime and inode)."""
        return self.stat == stat

    def covers(self, digests) -> bool:
        """Every one of ``digests`` (manifest.Digest objects) is among those this file passed."""
        return bool(self.digests) and all(self.digests.get(d.alg) == d.hex for d in digests)

    def moved_to(self, stat: Stat) -> "FileRecord":
        """The same facts about the same bytes under another name (a link or checked copy)."""
        return replace(self, stat=stat)


def _opt_str(value) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ModelRecord:
    """The records document of one model directory, typed: which model it holds (``name``,
    ``repo``, the ``revision`` asked for and the ``commit`` it resolved to), the paths a pull was
    asked for (``pulled``: a repo pulled with --include holds only those), and the file records.

    Read leniently, like every record: a field of the wrong type reads as absent (None), never
    as an error, because the files themselves are the truth and are hashed again.

    >>> from weightsafe.records import ModelRecord
    >>> ModelRecord.from_json({"name": "tiny", "commit": 7, "pulled": ["config.json"], "files": {}})
    ModelRecord(name='tiny', repo=None, revision=None, commit=None, pulled=('config.json',), files={})
    """

    name: str | None = None
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    pulled: tuple[str, ...] | None = None
    files: dict[str, FileRecord] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data) -> "ModelRecord":
        if not isinstance(data, dict):
            return cls()
        pulled = data.get("pulled")
        return cls(_opt_str(data.get("name")), _opt_str(data.get("repo")), _opt_str(data.get("revision")),
                   _opt_str(data.get("commit")),
                   tuple(p for p in pulled if isinstance(p, str)) if isinstance(pulled, list) else None,
                   Records.files_of(data))


class Records:
    """Per-file facts for one model directory: stat, xxh3-128 fingerprint, verified digests.

    Read-modify-write is done under a lock and written atomically, so concurrent pulls and
    verifies of the same model never lose each other's entries.
    """

    def __init__(self, path: Path):
        self.path = path

    @property
    def lock_path(self) -> Path:
        """The lock every read-modify-write of the document takes."""
        return Path(str(self.path) + ".lock")

    def load(self) -> dict:
        return read_json_object(self.path)

    def files(self) -> dict[str, FileRecord]:
        return self.files_of(self.load())

    def model(self) -> ModelRecord:
        """The whole document, typed (an absent or unreadable one is an empty ``ModelRecord``)."""
        return ModelRecord.from_json(self.load())

    @staticmethod
    def files_of(data: dict) -> dict[str, FileRecord]:
        """The file records in ``data`` (from ``load``), for a caller that also needs its metadata."""
        files = data.get("files", {})
        if not isinstance(files, dict):
            return {}
        return {path: rec for path, raw in files.items() if (rec := FileRecord.from_json(raw)) is not None}

    def update(self, entries: dict[str, FileRecord | None] | None = None, **meta) -> None:
        """Set (or, with None, drop) file entries and top-level metadata in one locked write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(str(self.lock_path)):
            data = self.load()
            files = data.setdefault("files", {})
            for path, entry in (entries or {}).items():
                if entry is None:
                    files.pop(path, None)
                else:
                    files[path] = entry.to_json()
            data.update(meta)
            atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


__all__ = ["FileRecord", "ModelRecord", "Records", "Stat"]
