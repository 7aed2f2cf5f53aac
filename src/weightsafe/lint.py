"""Judging a manifest that parses: what a careful reviewer would flag before trusting it.

Schema errors are not here: ``manifest.load`` refuses those (exit 2). These are warnings about
a valid manifest that checks less than it seems to: a branch instead of a commit, files nothing
can check, every digest resting on one source, a sharded model without its index.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from .errors import ExitCode, ManifestError
from .manifest import Manifest, load
from .text import escape

SHARD_RE = re.compile(r"-\d{5}-of-\d{5}\.(safetensors|bin)$")
WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


@dataclass(frozen=True)
class LintWarning:
    """One thing to fix, with a stable code for scripts."""

    code: str
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class LintReport:
    origin: str
    warnings: tuple[LintWarning, ...]

    def to_dict(self) -> dict:
        return {"manifest": self.origin, "ok": not self.warnings, "warnings": [w.to_dict() for w in self.warnings]}


def lint(m: Manifest) -> LintReport:
    out: list[LintWarning] = []
    if not m.pinned:
        out.append(LintWarning("unpinned", f"revision {m.revision!r} is not a full commit: the files it names can "
                                        f"change on the hub (run `weightsafe manifest pin`)"))
    bare = [f.path for f in m.files if not f.digests]
    if bare:
        out.append(LintWarning("no-digest", f"{len(bare)} file(s) without any digest: {_few(bare)}"))
    no_size = [f.path for f in m.files if f.size is None]
    if no_size:
        out.append(LintWarning("no-size", f"{len(no_size)} file(s) without an exact size: {_few(no_size)}"))
    used = {d.source for f in m.files for d in f.digests}
    if len(used) == 1:
        out.append(LintWarning("one-source", f"every digest comes from one source ({next(iter(used))}); nothing "
                                          f"confirms it independently"))
    paths = {f.path for f in m.files}
    weights = [p for p in paths if p.endswith(WEIGHTS)]
    if weights and not any(p.rsplit("/", 1)[-1] == "config.json" for p in paths):
        out.append(LintWarning("no-config", "no config.json: the load check cannot match weights to an architecture"))
    for fmt in ("safetensors", "bin"):
        shards = [p for p in weights if SHARD_RE.search(p) and p.endswith(fmt)]
        index = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
        if shards and not any(p.endswith(index) for p in paths):
            out.append(LintWarning("no-index", f"{len(shards)} .{fmt} shard(s) but no {index}"))
    return LintReport(m.origin, tuple(out))


@dataclass(frozen=True)
class LintRun:
    """``weightsafe manifest lint FILE...``: a report per manifest that parses, and the schema
    error of each that does not. Schema errors exit 2; warnings exit 1 only when ``strict``."""

    strict: bool
    reports: tuple[LintReport, ...]
    errors: tuple[ManifestError, ...]

    @property
    def warned(self) -> bool:
        return any(r.warnings for r in self.reports)

    @property
    def exit_code(self) -> int:
        return ExitCode.USAGE if self.errors else ExitCode.INTEGRITY if self.strict and self.warned else ExitCode.OK

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict:
        return {"command": "manifest lint", "ok": self.ok, "strict": self.strict,
                "manifests": [r.to_dict() for r in self.reports],
                "errors": [{"manifest": e.source, "field": e.field, "reason": e.reason} for e in self.errors]}


def lint_files(paths: Iterable[str | os.PathLike], strict: bool = False) -> LintRun:
    """Load and lint each manifest file; one that does not parse is an error, not a stop."""
    reports, errors = [], []
    for path in paths:
        try:
            reports.append(lint(load(path)))
        except ManifestError as e:
            errors.append(e)
    return LintRun(strict, tuple(reports), tuple(errors))


def _few(paths: list[str], n: int = 3) -> str:
    """The first ``n`` paths, escaped: a valid path may still hold bidi overrides (U+202E)."""
    return ", ".join(escape(p) for p in paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


__all__ = ["LintReport", "LintRun", "LintWarning", "lint", "lint_files"]
