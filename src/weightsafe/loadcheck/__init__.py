"""The load check: prove a checkpoint is usable, not only intact.

Structure pass (headers only, no tensor data): safetensors headers, a static pickle scan of
``.bin`` files, the index against the shards, and config.json against the tensors. Load pass:
every shard onto the device, one at a time. Unsafe content is refused before anything loads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExitCode, IntegrityError, UnsafeContentError, first_of
from ..manifest import Manifest
from .arch import check_config
from .device import LoadStats, load_all, pick_device
from .index import check_index
from .model import Problem, Structure, StructureError
from .pickle_scan import read_bin
from .safetensors_header import read_header

WEIGHT_SUFFIXES = {".safetensors": "safetensors", ".bin": "bin", ".pt": "bin", ".pth": "bin"}


@dataclass
class LoadReport:
    name: str
    directory: str
    formats: dict[str, list[str]]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tensors: int = 0
    parameters: int = 0
    bytes: int = 0
    structure_seconds: float = 0.0
    load: LoadStats | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        if any(p.unsafe for p in self.problems):
            return ExitCode.UNSAFE
        return ExitCode.INTEGRITY if self.problems else ExitCode.OK

    def raise_for_status(self) -> "LoadReport":
        """Raise UnsafeContentError (exit 5) or IntegrityError (exit 1) if the check failed."""
        if self.problems:
            cls = UnsafeContentError if self.exit_code == ExitCode.UNSAFE else IntegrityError
            raise cls(first_of([str(p) for p in self.problems]))
        return self

    def to_dict(self) -> dict:
        return {"command": "check", "ok": self.ok, "name": self.name, "directory": self.directory,
                "formats": self.formats, "tensors": self.tensors, "parameters": self.parameters,
                "bytes": self.bytes, "structure_seconds": round(self.structure_seconds, 4),
                "load": self.load.to_dict() if self.load else None, "notes": self.notes,
                "problems": [p.to_dict() for p in self.problems]}


def weight_files(directory: Path, manifest: Manifest | None) -> tuple[dict[str, list[str]], list[Problem]]:
    """Weight files by format: the manifest's (all must be present), else every one on disk."""
    problems = []
    if manifest is not None:
        names = [f.path for f in manifest.files if Path(f.path).suffix in WEIGHT_SUFFIXES]
        for n in names:
            if not (directory / n).is_file():
                problems.append(Problem(n, "missing from the directory (pull it first)"))
        names = [n for n in names if (directory / n).is_file()]
    else:
        names = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                       if p.is_file() and p.suffix in WEIGHT_SUFFIXES and ".cache" not in p.parts)
    formats: dict[str, list[str]] = {}
    for n in sorted(names):
        formats.setdefault(WEIGHT_SUFFIXES[Path(n).suffix], []).append(n)
    return formats, problems


def structure_pass(directory: Path, formats: dict[str, list[str]], manifest: Manifest | None) -> Structure:
    s = Structure()
    for fmt, files in formats.items():
        for name in files:
            try:
                if fmt == "safetensors":
                    s.tensors[name], _ = read_header(directory / name, name)
                else:
                    s.tensors[name] = read_bin(directory / name, name)
            except StructureError as e:
                s.problems.append(e.problem)
    if any(p.unsafe for p in s.problems):
        return s
    paths = {f.path for f in manifest.files} if manifest is not None else None
    config = _config(directory, s)
    for fmt, files in formats.items():
        s.problems += check_index(directory, fmt, s, paths, files)
        if config is not None:
            by_name = {n: ts[0] for n, ts in s.by_name(files).items()}
            problems, notes = check_config(config, by_name)
            s.problems += problems
            s.notes += [f"{fmt}: {n}" for n in notes]
    return s


def _config(directory: Path, s: Structure) -> dict | None:
    path = directory / "config.json"
    if not path.is_file():
        s.notes.append("no config.json: architecture check skipped")
        return None
    try:
        config = json.loads(path.read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
        return config
    except (OSError, ValueError) as e:
        s.problems.append(Problem("config.json", f"unreadable ({e})"))
        return None


def check(directory: Path, manifest: Manifest | None = None, name: str = "", device: str = "auto",
          load: bool = True, numerics: bool = False) -> LoadReport:
    """Run the structure pass, then (if it passed and ``load``) the load pass on ``device``."""
    start = time.perf_counter()
    formats, problems = weight_files(directory, manifest)
    report = LoadReport(name or (manifest.name if manifest else directory.name), str(directory), formats, problems)
    if not formats and not problems:
        report.problems.append(Problem(str(directory), "no weight files (.safetensors, .bin) found"))
    s = structure_pass(directory, formats, manifest)
    report.problems += s.problems
    report.notes += s.notes
    every = [t for ts in s.tensors.values() for t in ts]
    report.tensors, report.bytes = len(every), sum(t.nbytes for t in every)
    report.parameters = sum(t.numel for t in every)
    report.structure_seconds = time.perf_counter() - start
    if not load:
        return report
    if report.problems:
        report.notes.append("load pass skipped: the structure pass failed"
                            + (" (unsafe content is never loaded)" if report.exit_code == ExitCode.UNSAFE else ""))
        return report
    dev, notes = pick_device(device)
    report.notes += notes
    files = [f for fs in formats.values() for f in fs]
    report.load, load_problems = load_all(directory, files, s.tensors, dev, numerics)
    report.problems += load_problems
    return report
