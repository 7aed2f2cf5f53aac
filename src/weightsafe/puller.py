"""Pull a model into the cache: plan, ask the hub, check space, fetch in parallel, commit.

Order matters: everything that can refuse the pull (hub disagreeing with the manifest, too
little disk) runs before the first weight byte is fetched. Each file is fetched under its own
lock; a file another process is already fetching is deferred and picked up (usually already
committed) once the rest is done, so concurrent pulls share the work instead of repeating it.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from filelock import Timeout

from .cache import Cache
from .concurrency import pull_jobs, transfer_buffers
from .errors import (DiskError, ExitCode, HubError, HubMismatchError, IntegrityError, Interrupted, OfflineError,
                     WeightsafeError, first_of)
from .hashing import FINGERPRINT_ALG
from .manifest import Digest, FileEntry, Manifest
from .progress import Progress
from .records import FileRecord, Records, Stat
from .sources.base import RemoteFile, Source
from .sources.resume import Cancelled, PartFile
from .targets.base import Placement
from .targets.cache import CacheTarget
from .verify import VerifyReport, compare, explain, verify_file

HUB_HEAD_SOURCE = "hub-head"
SPACE_MARGIN = 64 * 1024 * 1024  # never fill a disk to the last byte: keep min(this, 5% of the pull)


#: What a pull did with a file: found it verified in the cache, downloaded and verified it, or failed.
FileStatus = Literal["cached", "downloaded", "failed"]
#: What a pull would do with a file (``pull --dry-run``).
PlannedAction = Literal["cached", "verify", "resume", "fetch"]


@dataclass
class FileOutcome:
    path: str
    status: FileStatus
    size: int = 0
    fetched: int = 0
    resumed_from: int = 0
    restarts: int = 0
    message: str = ""
    exit_code: int = ExitCode.OK
    checks: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "size": self.size, "fetched": self.fetched,
                "resumed_from": self.resumed_from, "restarts": self.restarts, "message": self.message,
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class PullReport:
    name: str
    repo: str
    revision: str
    directory: str
    files: list[FileOutcome]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    commit: str | None = None
    #: where the verified files were placed besides the cache (--local-dir, --hf-cache)
    target: str | None = None
    placements: list[Placement] = field(default_factory=list)
    #: the pulled files judged against an OpenSSF model signature, when one was given
    signature: VerifyReport | None = None

    @property
    def path(self) -> str:
        """The directory to load the model from: the placed copy if there is one, else the cache's."""
        return self.target or self.directory

    @property
    def failures(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures and (self.signature is None or self.signature.ok)

    @property
    def exit_code(self) -> int:
        codes = {f.exit_code for f in self.failures}
        if self.signature is not None and not self.signature.ok:
            codes.add(ExitCode.INTEGRITY)
        for code in (ExitCode.INTEGRITY, ExitCode.UNSAFE, ExitCode.DISK, ExitCode.NETWORK, ExitCode.USAGE):
            if code in codes:
                return code
        return ExitCode.OK

    @property
    def bytes_fetched(self) -> int:
        return sum(f.fetched for f in self.files)

    def to_dict(self) -> dict:
        return {"command": "pull", "ok": self.ok, "name": self.name, "repo": self.repo,
                "revision": self.revision, "commit": self.commit, "directory": self.directory,
                "path": self.path, "seconds": round(self.seconds, 3), "bytes_fetched": self.bytes_fetched,
                "notes": self.notes, "files": [f.to_dict() for f in self.files],
                "placements": [p.to_dict() for p in self.placements],
                "signature": self.signature.to_dict() if self.signature is not None else None}


@dataclass(frozen=True)
class PlannedFile:
    """What a pull would do with one file: cached, verify (present, not yet recorded), resume, fetch."""

    path: str
    action: PlannedAction
    size: int | None
    have: int = 0  # bytes already on disk for a resume

    @property
    def to_fetch(self) -> int | None:
        if self.action in ("cached", "verify"):
            return 0
        return None if self.size is None else max(0, self.size - self.have)

    def to_dict(self) -> dict:
        return {"path": self.path, "action": self.action, "size": self.size, "have": self.have,
                "to_fetch": self.to_fetch}


@dataclass
class PullPlan:
    """What ``pull --dry-run`` reports: decided from the cache and the hub, nothing changed."""

    name: str
    repo: str
    revision: str
    directory: str
    files: list[PlannedFile]
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_to_fetch(self) -> int:
        return sum(f.to_fetch or 0 for f in self.files)

    @property
    def unknown_sizes(self) -> list[str]:
        return [f.path for f in self.files if f.to_fetch is None]

    ok = True
    exit_code = ExitCode.OK

    def to_dict(self) -> dict:
        return {"command": "pull", "dry_run": True, "ok": True, "name": self.name, "repo": self.repo,
                "revision": self.revision, "directory": self.directory, "bytes_to_fetch": self.bytes_to_fetch,
                "unknown_sizes": self.unknown_sizes, "notes": self.notes,
                "files": [f.to_dict() for f in self.files]}


class _Either:
    """Set when the caller cancels, or when the pull stops its own workers early (a failure), without
    ever setting the caller's event: theirs may be shared with other work."""

    def __init__(self, outer: threading.Event):
        self.outer, self.inner = outer, threading.Event()

    def is_set(self) -> bool:
        return self.outer.is_set() or self.inner.is_set()

    def set(self) -> None:
        self.inner.set()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.outer.wait(min(left, 0.05))
        return True


class Puller:
    """One pull of one manifest into one cache."""

    def __init__(self, manifest: Manifest, cache: Cache, source: Source, jobs: int | None = None,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 keep_cache: bool = False):
        self.m = manifest
        self.cache = cache
        self.source = source
        self.jobs = pull_jobs(len(manifest.files), jobs)  # None: from the cores and the file count
        self.keep_cache = keep_cache  # else pages written are dropped once on disk (see pipeline.Writer)
        self.progress = progress or Progress()
        self.cancel = _Either(cancel) if cancel is not None else threading.Event()
        self.commit: str | None = manifest.revision if manifest.pinned else None
        self.records: Records = cache.records(manifest.name, manifest.revision)
        self.directory = cache.model_dir(manifest.name, manifest.revision)
        self.target = CacheTarget(cache, manifest, keep_cache)
        self.notes: list[str] = []

    # ---------------------------------------------------------------- plan
    def _cached_size(self, entry: FileEntry, recorded: dict[str, FileRecord]) -> int | None:
        """The size of a verified copy at the final path, or None when it must be fetched.

        A copy whose stat matches a record covering today's manifest digests counts as is; any
        other copy is checked in full, and moved aside (never deleted) if it fails.
        """
        path = self.cache.final_path(self.m.name, self.m.revision, entry.path)
        try:
            stat = Stat.of(path)
        except FileNotFoundError:
            return None
        record = recorded.get(entry.path)
        if _still_verified(record, stat, entry) and entry.size in (None, stat.size):
            return stat.size
        verdict, new = verify_file(entry, path, record, full=True, keep_cache=self.keep_cache)
        if verdict.status == "ok":
            self._record({entry.path: new})
            return stat.size
        rejected = self.cache.part_path(self.m.name, self.m.revision, entry.path + ".rejected")
        rejected.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, rejected)
        self.notes.append(f"{entry.path}: the cached copy failed verification ({verdict.message}); "
                          f"moved to {rejected} and fetched again")
        return None

    def plan(self) -> tuple[list[FileOutcome], list[FileEntry]]:
        recorded = self.records.files()
        cached, todo = [], []
        for entry in self.m.files:
            size = self._cached_size(entry, recorded)
            if size is None:
                todo.append(entry)
            else:
                cached.append(FileOutcome(entry.path, "cached", size=size))
        return cached, todo

    # ---------------------------------------------------------------- preflight
    def ask_hub(self, todo: list[FileEntry]) -> dict[str, RemoteFile]:
        with ThreadPoolExecutor(max_workers=min(8, self.jobs * 2)) as pool:
            remotes = list(pool.map(lambda e: self.source.stat(self.m.repo, self.m.revision, e.path), todo))
        problems = []
        for entry, remote in zip(todo, remotes):
            problems += self._disagreements(entry, remote)
        commits = {r.commit for r in remotes if r.commit}
        if len(commits) == 1:
            self.commit = commits.pop()
        if problems:
            raise HubMismatchError(f"the hub disagrees with the manifest {self.m.origin}: "
                                   f"{first_of(problems)}; nothing was downloaded")
        return {e.path: r for e, r in zip(todo, remotes)}

    def _disagreements(self, entry: FileEntry, remote: RemoteFile) -> list[str]:
        out = []
        if entry.size is not None and remote.size is not None and entry.size != remote.size:
            out.append(f"{entry.path}: size {remote.size} on the hub, {entry.size} in the manifest")
        for alg, hexd in remote.hub_digests.items():
            mine = entry.digest(alg)
            if mine and mine.hex != hexd:
                out.append(f"{entry.path}: {alg} {hexd} on the hub, {mine.hex} in the manifest "
                           f"(source {mine.source})")
        if self.m.pinned and remote.commit and remote.commit != self.m.revision:
            out.append(f"{entry.path}: the hub served commit {remote.commit}, the manifest pins {self.m.revision}")
        if self.m.commit and remote.commit and not remote.commit.startswith(self.m.commit):
            self.notes.append(f"{self.m.revision} now resolves to {remote.commit}, not {self.m.commit} "
                              f"as the manifest expects; files are still checked against its digests")
        return out

    def check_space(self, todo: list[FileEntry], remotes: dict[str, RemoteFile]) -> None:
        need = 0
        for entry in todo:
            size = entry.size if entry.size is not None else remotes[entry.path].size or entry.size_approx or 0
            part = PartFile(self.cache.part_path(self.m.name, self.m.revision, entry.path))
            need += max(0, size - part.size())
        free = self.cache.free_bytes()
        margin = min(SPACE_MARGIN, need // 20)
        if need + margin > free:
            raise DiskError(f"not enough disk space in {self.cache.root}: {_gb(need)} still to fetch, "
                            f"{_gb(free)} free (keeping {_gb(margin)} spare)")

    # ---------------------------------------------------------------- fetch
    def fetch(self, entry: FileEntry, remote: RemoteFile, wait: bool) -> FileOutcome | None:
        """Fetch one file under its lock; None when another process holds it and wait is False."""
        lock = self.cache.lock(self.m.name, self.m.revision, entry.path)
        while True:  # wait in short steps, so a cancel is noticed while another process holds it
            try:
                lock.acquire(timeout=0.25 if wait else 0)
                break
            except Timeout:
                if not wait:
                    return None
                if self.cancel.is_set():
                    raise Cancelled(entry.path) from None
        try:
            size = self._cached_size(entry, self.records.files())
            if size is not None:
                return FileOutcome(entry.path, "cached", size=size, message="fetched by another process")
            return self._download(entry, remote)
        except WeightsafeError as e:
            return FileOutcome(entry.path, "failed", message=str(e), exit_code=e.exit_code)
        except OSError as e:  # the cache's file system failed us (full, read-only, quota)
            return FileOutcome(entry.path, "failed", exit_code=ExitCode.DISK,
                               message=f"{entry.path}: cannot write the cache: {e.strerror or e}")
        finally:
            lock.release()

    def _download(self, entry: FileEntry, remote: RemoteFile) -> FileOutcome:
        expected = entry.supplemented(Digest(alg, hexd, HUB_HEAD_SOURCE) for alg, hexd in remote.hub_digests.items())
        if not expected:
            raise IntegrityError(f"{entry.path}: no digest is known (not in the manifest, and the "
                                 f"server gave none), so it cannot be verified; refusing to cache it")
        size = entry.size if entry.size is not None else remote.size
        part = PartFile(self.cache.part_path(self.m.name, self.m.revision, entry.path))
        algs = tuple(d.alg for d in expected) + (FINGERPRINT_ALG,)
        self.progress.file_start(entry.path, size)
        result = self.source.download(self.m.repo, self.m.revision, entry.path, part, algs, size, remote.etag,
                                      progress=lambda n: self.progress.advance(entry.path, n), cancel=self.cancel,
                                      buffers=transfer_buffers(self.jobs), keep_cache=self.keep_cache)
        outcome = FileOutcome(entry.path, "downloaded", size=result.size, fetched=result.fetched,
                              resumed_from=result.resumed_from, restarts=result.restarts)
        outcome.checks = compare(expected, result.digests)
        if size is not None and result.size != size:
            part.discard()
            raise IntegrityError(f"{entry.path}: received {result.size} bytes, expected {size}")
        if not all(c.ok for c in outcome.checks):
            part.discard()
            self.progress.file_end(entry.path, "failed")
            raise IntegrityError(explain(entry.path, outcome.checks) + "; the download was discarded")
        verified = FileRecord.passed(Stat.of(part.path), result.digests[FINGERPRINT_ALG], expected)
        self.target.place(entry, part.path, verified)  # fsync, rename to the final path, record
        part.discard()
        self.progress.file_end(entry.path, "ok")
        return outcome

    def _record(self, entries: dict | None = None, **meta) -> None:
        """Update the records. They are a cache of facts, not the truth: a file committed after
        its digests matched stays valid if they cannot be written (say the disk is full)."""
        try:
            self.records.update(entries, **meta)
        except OSError as e:
            note = (f"could not update {self.records.path} ({e.strerror or e}); the next pull or "
                    f"verify re-hashes the files it does not cover")
            if note not in self.notes:
                self.notes.append(note)

    # ---------------------------------------------------------------- run
    def run(self) -> PullReport:
        start = time.monotonic()
        cached, todo = self.plan()
        report = PullReport(self.m.name, self.m.repo, self.m.revision, str(self.directory), cached,
                            notes=self.notes)
        recorded_commit = self.records.model().commit
        if todo:
            if self.source.offline:
                raise OfflineError(f"{len(todo)} file(s) of {self.m.name} are not in the cache "
                                   f"(first: {todo[0].path}) and offline mode is on")
            remotes = self.ask_hub(todo)
            self.check_space(todo, remotes)
            total = sum((e.size if e.size is not None else remotes[e.path].size or 0) for e in todo)
            self.progress.start(total, len(todo))
            try:
                report.files += self._fetch_all(todo, remotes)
            finally:
                self.progress.close()
        # What the user asked for, fetched or not: `verify NAME` then reports a failed file as missing.
        self.commit = self.commit or recorded_commit
        known = self.records.model()
        meta = {"name": self.m.name, "repo": self.m.repo, "revision": self.m.revision,
                "pulled": sorted(set(known.pulled or ()) | {f.path for f in self.m.files})}
        if self.commit:
            meta["commit"] = self.commit
        now = {"name": known.name, "repo": known.repo, "revision": known.revision,
               "pulled": list(known.pulled) if known.pulled is not None else None, "commit": known.commit}
        if any(now[k] != v for k, v in meta.items()):  # a read-only cache is never written needlessly
            self._record(**meta)
        self.notes += [n for n in self.target.finish().notes if n not in self.notes]
        report.commit = self.commit
        order = {e.path: i for i, e in enumerate(self.m.files)}
        report.files.sort(key=lambda f: order.get(f.path, 0))
        report.seconds = time.monotonic() - start
        return report

    def _fetch_all(self, todo: list[FileEntry], remotes: dict[str, RemoteFile]) -> list[FileOutcome]:
        """Fetch in parallel. On Ctrl-C or a cancel, every worker stops at its next buffer and the
        parts stay resumable; the caller gets Interrupted (KeyboardInterrupt passes through)."""
        outcomes, deferred = [], []
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            first = list(pool.map(lambda e: (e, self.fetch(e, remotes[e.path], wait=False)), todo))
            for entry, outcome in first:
                (outcomes.append(outcome) if outcome else deferred.append(entry))
            outcomes += list(pool.map(lambda e: self.fetch(e, remotes[e.path], wait=True), deferred))
        except Cancelled:
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise Interrupted(f"pull of {self.m.name} cancelled; partial downloads are kept and "
                              f"resume on the next pull") from None
        except BaseException:
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes

    # ---------------------------------------------------------------- dry run
    def preview(self) -> PullPlan:
        """What ``run`` would do, decided without hashing, moving or writing anything."""
        recorded = self.records.files()
        planned = []
        for entry in self.m.files:
            final = self.cache.final_path(self.m.name, self.m.revision, entry.path)
            part = PartFile(self.cache.part_path(self.m.name, self.m.revision, entry.path))
            try:
                stat = Stat.of(final)
            except FileNotFoundError:
                stat = None
            record = recorded.get(entry.path)
            if stat is not None:
                fresh = _still_verified(record, stat, entry)
                planned.append(PlannedFile(entry.path, "cached" if fresh else "verify", stat.size))
            else:
                have = part.size()
                planned.append(PlannedFile(entry.path, "resume" if have else "fetch", entry.size, have))
        unknown = [self.m.file(p.path) for p in planned if p.to_fetch is None]
        if unknown and not self.source.offline:
            sizes = {path: r.size for path, r in self.ask_hub(unknown).items()}
            planned = [PlannedFile(p.path, p.action, sizes.get(p.path, p.size), p.have) if p.to_fetch is None else p
                       for p in planned]
        elif unknown:
            self.notes.append(f"{len(unknown)} file size(s) unknown: offline, the hub was not asked")
        return PullPlan(self.m.name, self.m.repo, self.m.revision, str(self.directory), planned, self.notes)


def _still_verified(record: FileRecord | None, stat: Stat, entry: FileEntry) -> bool:
    """The copy at the final path is the one ``record`` proved against today's manifest digests."""
    return record is not None and record.matches(stat) and record.covers(entry.digests)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


__all__ = ["Puller", "PullReport", "PullPlan", "PlannedFile", "FileOutcome", "HubError"]
