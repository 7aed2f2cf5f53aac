"""The load check: prove a checkpoint is usable, not only intact.

Structure pass (headers only, no tensor data): safetensors headers, a static pickle scan of
``.bin`` files, the index against the shards, and config.json against the tensors; GGUF headers,
split sets and their metadata's architecture (``gguf_check``). Load pass: every shard onto the
device, one at a time. Unsafe content is refused before anything loads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExitCode, IntegrityError, UnsafeContentError, first_of
from ..manifest import Manifest, check_relpath
from .arch import check_config
from .device import LoadStats, cpu_free_bytes, load_all, pick_device
from .forward import ForwardResult, forward_check
from . import gguf_forward
from .index import check_index
from .model import Problem, Structure, StructureError
from . import strict_json
from .aux_pickles import check_auxiliary
from .formats import GGUF, OTHER, SAFETENSORS, TORCH_TAR, TORCH_ZIP, PICKLE, Candidate, scan_directory, sniff
from .gguf_check import GGUFStructure, check_gguf_files
from .index import INDEXES
from .pickle_scan import read_bin
from .safetensors_header import read_header

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".gguf"}  # a manifest's files that must be present
LEGACY = {PICKLE: "legacy torch format (a bare pickle, not a zip archive): torch.load would unpickle it with "
                  "no archive to check; refused unscanned",
          TORCH_TAR: "legacy torch tar format: refused unscanned (re-save it with torch.save)"}


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
    forward: ForwardResult | None = None

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
                "load": self.load.to_dict() if self.load else None,
                "forward": self.forward.to_dict() if self.forward else None, "notes": self.notes,
                "problems": [p.to_dict() for p in self.problems]}


def candidates(directory: Path, manifest: Manifest | None) -> tuple[dict[str, list[str]], list[Candidate],
                                                                    list[Problem]]:
    """Weight files by format, auxiliary pickles, and problems. Every file on disk (and every file
    the manifest or an index names) is sniffed by its first bytes; with a manifest, its weight
    files must all be present."""
    problems = []
    names = {str(p.relative_to(directory)) for p in _walk(directory)}
    if manifest is not None:
        for f in manifest.files:
            if Path(f.path).suffix.lower() in WEIGHT_SUFFIXES and not (directory / f.path).is_file():
                problems.append(Problem(f.path, "missing from the directory (pull it first)"))
        names |= {f.path for f in manifest.files}
    targets = weight_map_targets(directory)
    found, scan_problems = scan_directory(directory, sorted(names | targets), targets)
    problems += scan_problems
    formats: dict[str, list[str]] = {}
    for c in found:
        if not c.auxiliary:
            kind = "safetensors" if c.format in (SAFETENSORS, OTHER) else "gguf" if c.format == GGUF else "bin"
            formats.setdefault(kind, []).append(c.name)
    return formats, [c for c in found if c.auxiliary], problems


def _walk(directory: Path):
    """Every file and symlink under ``directory``; symlinked folders are not entered."""
    for root, dirs, files in os.walk(directory):
        for n in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            yield Path(root) / n


def weight_map_targets(directory: Path) -> set[str]:
    """Every safe relative path an index's weight_map names, whatever its extension."""
    out = set()
    for name in INDEXES.values():
        try:
            weight_map = strict_json.loads((directory / name).read_bytes()).get("weight_map")
        except (OSError, ValueError, AttributeError):
            continue
        for shard in (weight_map.values() if isinstance(weight_map, dict) else []):
            try:
                check_relpath(shard, "shard")
            except (ValueError, TypeError):
                continue
            out.add(shard)
    return out


def structure_pass(directory: Path, formats: dict[str, list[str]], manifest: Manifest | None) -> Structure:
    s = Structure()
    if GGUF in formats:
        s.gguf = check_gguf_files(directory, formats[GGUF])
        s.tensors.update(s.gguf.tensors)
        s.problems += s.gguf.problems
        s.notes += s.gguf.notes
        s.failed |= s.gguf.failed
    formats = {k: v for k, v in formats.items() if k != GGUF}
    for fmt, files in formats.items():
        for name in files:
            try:
                kind = sniff(directory / name)
                if kind in (SAFETENSORS, OTHER):
                    s.tensors[name], _ = read_header(directory / name, name)
                elif kind == TORCH_ZIP:
                    s.tensors[name] = read_bin(directory / name, name)
                else:
                    raise StructureError(Problem(name, LEGACY[kind], unsafe=True))
            except StructureError as e:
                s.problems.append(e.problem)
                s.failed.add(name)
            except OSError as e:
                s.problems.append(Problem(name, f"cannot read: {e}"))
                s.failed.add(name)
    if any(p.unsafe for p in s.problems):
        return s
    paths = {f.path for f in manifest.files} if manifest is not None else None
    config = _config(directory, s) if formats else None
    for fmt, files in formats.items():
        s.problems += check_index(directory, fmt, s, paths, files)
        if config is not None and s.failed:
            s.notes.append(f"{fmt}: config check skipped: {len(s.failed)} weight file(s) could not be read")
        elif config is not None:
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
        config = strict_json.loads(path.read_bytes())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
        return config
    except (OSError, ValueError) as e:
        s.problems.append(Problem("config.json", f"unreadable ({e})"))
        return None


def check(directory: Path, manifest: Manifest | None = None, name: str = "", device: str = "auto",
          load: bool = True, numerics: bool = False, strict: bool = False, forward: bool = False) -> LoadReport:
    """Run the structure pass, then (if it passed and ``load``) the load pass on ``device``.
    ``strict``: an auxiliary pickle importing anything beyond the weight allowlist is refused.
    ``forward``: after a clean load, build the model and run one short forward pass."""
    start = time.perf_counter()
    formats, auxiliary, problems = candidates(directory, manifest)
    report = LoadReport(name or (manifest.name if manifest else directory.name), str(directory), formats, problems)
    for c in auxiliary:
        aux_problems, aux_notes = check_auxiliary(directory, c, strict)
        report.problems += aux_problems
        report.notes += aux_notes
    if not formats and not problems:
        report.problems.append(Problem(str(directory), "no weight files (.safetensors, .bin, .gguf) found"))
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
    files = [f for fmt, fs in formats.items() if fmt != GGUF for f in fs]
    if not files and device.lower() == "cpu":  # GGUF on the CPU needs numpy only: torch's import is ~1 s
        dev = "cpu"
        report.load = LoadStats(dev, free_device_bytes=cpu_free_bytes())
    else:
        dev, notes = pick_device(device)
        report.notes += notes
        report.load, load_problems = load_all(directory, files, s.tensors, dev, numerics)
        report.problems += load_problems
    if s.gguf is not None:
        from .gguf_load import load_gguf  # numpy: imported only where GGUF files are loaded

        report.problems += load_gguf(directory, s.gguf.files, dev, numerics, report.load)
    if forward and not report.problems:
        if files:
            report.forward, forward_problems = forward_check(directory, dev)
            report.problems += forward_problems
        if s.gguf is not None:
            _forward_gguf(directory, s.gguf, dev, report)
    return report


def _forward_gguf(directory: Path, g: GGUFStructure, device: str, report: LoadReport) -> None:
    """llama.cpp evaluates each GGUF model (a split set from its first part); skipped with a note
    where llama-cpp-python is not installed."""
    if not gguf_forward.available():
        report.notes.append(gguf_forward.SKIPPED)
        return
    for model in g.models:
        result, problems, notes = gguf_forward.forward_gguf(directory / model.first, model.name, device)
        report.forward = report.forward or result
        report.problems += problems
        if notes:
            report.notes += notes
            return
