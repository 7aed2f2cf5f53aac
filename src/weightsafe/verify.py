"""Judge files on disk against a manifest: one verdict per file, saying exactly what is wrong.

Two speeds. A full check hashes every digest the manifest lists (and says which source's
digest failed when, say, a card's MD5 and the hub's SHA-256 disagree). After a full check, an
xxh3-128 fingerprint is recorded; a later plain ``verify`` re-hashes only that (disk speed),
falling back to a full check for any file without a fingerprint that covers today's manifest.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

from .records import FileRecord, Records, Stat
from .concurrency import verify_jobs
from .errors import IntegrityError, first_of
from .hashing import FINGERPRINT_ALG, hash_file
from .manifest import Digest, FileEntry, Manifest, selected

#: A file's verdict: ``ok``; ``unexpected`` (on disk, not in the manifest: fails only with strict);
#: or one of the failures in FAILING.
VerdictStatus = Literal["ok", "mismatch", "missing", "wrong_size", "unexpected", "unverifiable", "error"]
#: How a file was judged: its recorded fingerprint, every manifest digest, or not at all ("").
VerdictMethod = Literal["", "fingerprint", "full"]

OK: VerdictStatus = "ok"
MISMATCH: VerdictStatus = "mismatch"
MISSING: VerdictStatus = "missing"
WRONG_SIZE: VerdictStatus = "wrong_size"
UNEXPECTED: VerdictStatus = "unexpected"
UNVERIFIABLE: VerdictStatus = "unverifiable"
ERROR: VerdictStatus = "error"
FAILING: frozenset[VerdictStatus] = frozenset({MISMATCH, MISSING, WRONG_SIZE, UNVERIFIABLE, ERROR})


@dataclass(frozen=True)
class DigestCheck:
    alg: str
    source: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual

    def to_dict(self) -> dict:
        return {"alg": self.alg, "source": self.source, "expected": self.expected,
                "actual": self.actual, "ok": self.ok}


def compare(expected: tuple[Digest, ...], actual: dict[str, str]) -> list[DigestCheck]:
    return [DigestCheck(d.alg, d.source, d.hex, actual[d.alg]) for d in expected if d.alg in actual]


def explain(path: str, checks: list[DigestCheck]) -> str:
    """One line naming each failed digest and its source, and what still agreed."""
    bad = [c for c in checks if not c.ok]
    good = [c for c in checks if c.ok]
    parts = [f"{c.alg} from {c.source} differs (expected {c.expected}, got {c.actual})" for c in bad]
    msg = f"{path}: " + "; ".join(parts)
    if good:
        agree = ", ".join(f"{c.alg} from {c.source}" for c in good)
        msg += f"; {agree} matches, so the sources disagree with each other"
        msg += " (the published checksum may predate the upload)" if any(
            c.source.startswith("hub") for c in good) else ""
    return msg


def expected_digests(entry: FileEntry, record: FileRecord | None) -> tuple[Digest, ...]:
    """The manifest's digests, plus digests the hub gave at pull time for algorithms it lacks."""
    if record is None:
        return entry.supplemented(())
    return entry.supplemented(Digest(alg, hexd, record.sources[alg])
                              for alg, hexd in record.digests.items() if alg in record.sources)


@dataclass
class FileVerdict:
    path: str
    status: VerdictStatus
    message: str = ""
    expected_size: int | None = None
    actual_size: int | None = None
    checks: list[DigestCheck] = field(default_factory=list)
    method: VerdictMethod = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "message": self.message,
                "expected_size": self.expected_size, "actual_size": self.actual_size,
                "method": self.method, "checks": [c.to_dict() for c in self.checks]}


@dataclass
class VerifyReport:
    name: str
    directory: str
    verdicts: list[FileVerdict]
    seconds: float = 0.0
    bytes_hashed: int = 0
    strict: bool = False
    notes: list[str] = field(default_factory=list)

    #: the same files judged against an OpenSSF model signature, when one was given
    signature: "VerifyReport | None" = None

    @property
    def failures(self) -> list[FileVerdict]:
        return [v for v in self.verdicts if v.failed or (self.strict and v.status == UNEXPECTED)]

    @property
    def ok(self) -> bool:
        return not self.failures and (self.signature is None or self.signature.ok)

    def raise_for_status(self) -> "VerifyReport":
        """Raise IntegrityError (exit 1) naming the first failed file if any file failed."""
        if not self.ok:
            signed = self.signature.failures if self.signature else []
            raise IntegrityError(first_of([v.message for v in self.failures + signed]))
        return self

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for v in self.verdicts:
            counts[v.status] = counts.get(v.status, 0) + 1
        return {"command": "verify", "ok": self.ok, "name": self.name, "directory": self.directory,
                "counts": counts, "seconds": round(self.seconds, 3), "bytes_hashed": self.bytes_hashed,
                "notes": self.notes, "files": [v.to_dict() for v in self.verdicts],
                "signature": self.signature.to_dict() if self.signature else None}


def verify_file(entry: FileEntry, path: Path, record: FileRecord | None, full: bool,
                progress: Callable[[int], None] | None = None,
                keep_cache: bool = False) -> tuple[FileVerdict, FileRecord | None]:
    """Judge one file; returns the verdict and, after a passing full check, a new record."""
    verdict = FileVerdict(entry.path, OK, expected_size=entry.size)
    try:
        stat = Stat.of(path)
    except FileNotFoundError:
        verdict.status, verdict.message = MISSING, f"{entry.path}: missing"
        return verdict, None
    except OSError as e:
        verdict.status, verdict.message = ERROR, f"{entry.path}: {e.strerror}"
        return verdict, None
    verdict.actual_size = stat.size
    if entry.size is not None and stat.size != entry.size:
        verdict.status = WRONG_SIZE
        verdict.message = f"{entry.path}: size is {stat.size} bytes, expected {entry.size}"
        return verdict, None
    expected = expected_digests(entry, record)
    if not expected:
        verdict.status = UNVERIFIABLE
        verdict.message = f"{entry.path}: no digest is known for this file (manifest lists none)"
        return verdict, None
    covered = record is not None and record.fingerprint is not None and record.covers(expected)
    try:
        if covered and not full:
            verdict.method = "fingerprint"
            actual = hash_file(path, (FINGERPRINT_ALG,), stat.size, progress,
                               keep_cache=keep_cache)[FINGERPRINT_ALG]
            if actual != record.fingerprint:
                verdict.status = MISMATCH
                verdict.checks = [DigestCheck(FINGERPRINT_ALG, "fingerprint", record.fingerprint, actual)]
                verdict.message = (f"{entry.path}: changed since it was verified (xxh3-128 fingerprint "
                                   f"differs); run `verify --full` to see which digest fails")
            return verdict, None
        verdict.method = "full"
        algs = tuple(d.alg for d in expected) + (FINGERPRINT_ALG,)
        actual = hash_file(path, algs, stat.size, progress, keep_cache=keep_cache)
    except OSError as e:
        verdict.status, verdict.message = ERROR, f"{entry.path}: {e.strerror or e}"
        return verdict, None
    verdict.checks = compare(expected, actual)
    if not all(c.ok for c in verdict.checks):
        verdict.status = MISMATCH
        verdict.message = explain(entry.path, verdict.checks)
        return verdict, None
    return verdict, FileRecord.passed(stat, actual[FINGERPRINT_ALG], expected)


def unexpected_files(directory: Path, manifest: Manifest) -> list[str]:
    known = {f.path for f in manifest.files}
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in (".cache", ".git"))
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/")
            if rel not in known:
                found.append(rel)
    return found


def verify_directory(manifest: Manifest, directory: Path, records: Records | None, full: bool = False,
                     jobs: int | None = None, progress: Callable[[int], None] | None = None,
                     report_unexpected: bool = True, strict: bool = False,
                     include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                     keep_cache: bool = False) -> VerifyReport:
    """Verify the manifest files under ``directory`` (those ``include``/``exclude`` select) in
    parallel, and record new fingerprints where the records can be written (a read-only volume
    is verified all the same). A file the selection leaves out is neither checked nor unexpected.
    Pages read are dropped from the page cache after, unless ``keep_cache``."""
    start = time.monotonic()
    include, exclude = tuple(include or ()), tuple(exclude or ())
    chosen = manifest.select(include, exclude)
    recorded = records.files() if records else {}

    def one(entry: FileEntry):
        return verify_file(entry, directory / entry.path, recorded.get(entry.path), full, progress, keep_cache)

    pool = ThreadPoolExecutor(max_workers=verify_jobs(len(chosen.files), jobs))
    try:
        results = list(pool.map(one, chosen.files))
    except BaseException:  # Ctrl-C: queued files are dropped, not hashed before exiting
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    verdicts = [v for v, _ in results]
    notes = []
    fresh = {e.path: new for e, (_, new) in zip(chosen.files, results) if new}
    if records and fresh:
        try:
            records.update(fresh)
        except OSError as e:
            notes.append(f"fingerprints not recorded ({records.path}: {e.strerror or e}); the next verify "
                         f"hashes in full again")
    if report_unexpected and directory.is_dir():
        verdicts += [FileVerdict(p, UNEXPECTED, f"{p}: not in the manifest") for p in
                     unexpected_files(directory, manifest) if selected(p, include, exclude)]
    hashed = sum(v.actual_size or 0 for v in verdicts if v.method)
    return VerifyReport(manifest.name, str(directory), verdicts, time.monotonic() - start, hashed, strict, notes)
