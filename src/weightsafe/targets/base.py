"""What a target reports back: where each verified file was placed, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import manifest as mf
from ..records import FileRecord

SKIPPED = "present"


@dataclass(frozen=True)
class ExportedFile:
    path: str     # inside the model
    target: str   # where it now is (a path, or an s3:// URL)
    method: str   # reflink | hardlink | copy | upload | present (already there, same bytes)

    def to_dict(self) -> dict:
        return {"path": self.path, "target": self.target, "method": self.method}


@dataclass
class ExportReport:
    name: str
    repo: str
    commit: str
    destination: str
    manifest: str
    aliases: list[str] = field(default_factory=list)
    files: list[ExportedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    ok = True
    exit_code = 0

    @property
    def changed(self) -> int:
        return sum(f.method != SKIPPED for f in self.files)

    def to_dict(self) -> dict:
        return {"command": "mirror export", "ok": True, "name": self.name, "repo": self.repo,
                "commit": self.commit, "destination": self.destination, "manifest": self.manifest,
                "aliases": self.aliases, "changed": self.changed, "notes": self.notes,
                "files": [f.to_dict() for f in self.files]}


@dataclass(frozen=True)
class Verified:
    """A model as it is verified in the cache: the manifest to publish, its commit, its files."""

    manifest: mf.Manifest
    commit: str
    directory: Path
    records: dict[str, FileRecord]

    def source(self, path: str) -> Path:
        return self.directory / path

    def fingerprint(self, path: str) -> str | None:
        record = self.records.get(path)
        return record.fingerprint if record else None


__all__ = ["ExportReport", "ExportedFile", "SKIPPED", "Verified"]
