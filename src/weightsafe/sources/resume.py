"""Resumable download of one file into a ``.part`` file, hashing every byte as it arrives: the one
retry, restart and cancel loop every source uses.

A source knows how to open its file at an offset (``Ranges.open``: an HTTP GET with Range and
If-Range, an S3 GET with Range and If-Match); everything else is here, once. Resume is bound to a
validator: if the source says the representation changed (it ignored the Range, the ETag moved,
the object was replaced) the part starts over, so bytes of two versions are never mixed. The
bytes already on disk are re-read through the hashers before resuming (a local read, far cheaper
than the network). A dropped or stalled connection is resumed from the current offset with a
jittered backoff; an attempt that made progress does not count against the retry budget.

The hot path is a pipeline (pipeline.py): this thread only moves bytes from the source into
large buffers; each digest and the disk writer consume them on their own threads, and the
writer hands dirty pages to writeback as it goes, so the commit's fsync overlaps the download.
A ``cancel`` event stops a transfer at the next buffer boundary with the part resumable.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..errors import DiskError, HubError
from ..fsutil import atomic_write, nofollow, read_json_object, refuse_planted
from ..hashing import MultiHasher, feed_file
from ..pipeline import BUFFER, BUFFERS, Pipeline, writing

CHUNK = BUFFER  # bytes per buffer: cache-sized (see pipeline.py), little lost in flight to a kill -9
HANDOFF = 0.01  # seconds: bytes are handed on (to disk, to progress) at least this often, so a kill -9 loses little
MAX_PAUSE = 10.0  # seconds: the longest backoff between two attempts at one file


@dataclass
class TransferResult:
    digests: dict[str, str]
    size: int
    fetched: int       # bytes that came over the network in this run
    resumed_from: int  # bytes reused from an earlier run
    restarts: int      # times the part had to start over (Range ignored, ETag changed)


class Cancelled(Exception):
    """The caller's cancel event was set: the transfer stopped with every byte it received
    written, hashed and counted, so the part resumes from there next time."""


class Restart(Exception):
    """The source now serves a different representation; the part must start over. The source
    has already bound its ``validator`` to what it serves now: the digests decide whether that new
    content is acceptable (usually not)."""


class TooSlow(ConnectionError):
    """A transfer stayed under the minimum throughput for a whole window: cut, then resumed."""


class ShortBody(ConnectionError):
    """A response ended before the bytes it announced: resumed from where it stopped."""


class Body(Protocol):
    def read1(self, n: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class Opened:
    """One response of a source, positioned at the offset asked for."""

    body: Body
    length: int | None = None  # bytes it promises (None: until it ends)


class Ranges(Protocol):
    """One file of one source, openable at any offset. Each source implements this and nothing
    more of the transfer: ``fetch`` does the resuming, retrying, restarting and cancelling."""

    #: The validator the bytes on disk are bound to (an ETag): persisted with the part, so that a
    #: later run resumes under it (If-Range) or starts over.
    validator: str | None
    #: Exceptions that mean "the connection failed; resume from the current offset".
    transient: tuple[type[BaseException], ...]

    def resumed(self, validator: str | None) -> None:
        """The validator the kept bytes were fetched under, from an earlier run."""

    def open(self, offset: int) -> Opened | None:
        """The file from ``offset`` on; None when nothing is left to send. Raises ``Restart``
        when the representation changed, a member of ``transient`` to be retried, or a
        ``WeightsafeError`` that ends the transfer."""

    def reason(self, error: BaseException) -> str:
        """A short, human reason for a transient failure, for the retry line."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one transfer tries: attempts in a row without progress, and the backoff base
    (seconds, doubled per failure, capped at MAX_PAUSE, with jitter so a fleet that failed
    together does not come back together)."""

    attempts: int = 6
    backoff: float = 0.5

    def pause(self, failures: int) -> float:
        base = min(self.backoff * 2 ** failures, MAX_PAUSE)
        return base / 2 + random.uniform(0, base / 2)


@dataclass(frozen=True)
class SpeedLimit:
    """Cut a connection that trickles (a byte a second never trips the read timeout):
    ``WEIGHTSAFE_MIN_SPEED`` bytes/s (default 1024; 0 turns it off), averaged over
    ``WEIGHTSAFE_MIN_SPEED_WINDOW`` seconds (default 30)."""

    min_bps: float = 1024.0
    window: float = 30.0


@dataclass(frozen=True)
class PartState:
    """What a part's bytes were begun for: the file version (``expect``, the source's ETag at stat
    time), its size, and the validator the bytes on disk were fetched under (sent as If-Range).
    The resume offset is not here: it is the part's own size, which cannot disagree with it."""

    expect: str | None = None
    size: int | None = None
    validator: str | None = None

    @classmethod
    def load(cls, path: Path) -> "PartState":
        """The state on disk; a missing, unreadable or mistyped one is no state (the part then
        starts over: a hint that cannot be trusted is not used)."""
        raw = read_json_object(path)
        expect, size, validator = raw.get("expect"), raw.get("size"), raw.get("validator")
        return cls(expect if isinstance(expect, str) else None,
                   size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                   validator if isinstance(validator, str) else None)

    def encode(self) -> bytes:
        return json.dumps({"expect": self.expect, "size": self.size, "validator": self.validator}).encode()


class PartFile:
    """A partial download and its state; the only writer of both."""

    def __init__(self, path: Path):
        self.path = path
        self.state_path = Path(str(path) + ".json")

    def state(self) -> PartState:
        return PartState.load(self.state_path)

    def save_state(self, state: PartState) -> None:
        refuse_planted(self.state_path)
        atomic_write(self.state_path, state.encode())  # O_EXCL temp, then rename

    def refuse_planted(self) -> None:
        """Before reading or writing: the part and its state are files this cache wrote."""
        refuse_planted(self.path)
        refuse_planted(self.state_path)

    def resume(self, expect: str | None, size: int | None, algs: tuple[str, ...],
               progress: Callable[[int], None] | None = None) -> tuple[MultiHasher, str | None]:
        """Reopen the part for the file version ``expect`` of ``size`` bytes. Bytes begun for
        another version or size are discarded; kept bytes are re-read through a fresh hasher.
        Returns the hasher, whose count is the offset to resume from, and the validator the kept
        bytes were fetched under."""
        self.refuse_planted()
        state = self.state()
        offset = self.size()
        if offset and (expect is None or state.expect != expect or state.size != size
                       or (size is not None and offset > size)):
            self.discard()
            offset = 0
        validator = state.validator if offset else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.save_state(PartState(expect, size, validator))
        hasher = MultiHasher(algs, size)
        if offset:
            feed_file(self.path, hasher, limit=offset)
            if progress:
                progress(offset)
        return hasher, validator

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def truncate(self) -> None:
        with open(self.path, "wb", opener=nofollow):
            pass

    def discard(self) -> None:
        for p in (self.path, self.state_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def fetch(ranges: Ranges, part: PartFile, algs: tuple[str, ...], size: int | None, expect: str | None, *,
          policy: RetryPolicy = RetryPolicy(), speed: SpeedLimit = SpeedLimit(),
          progress: Callable[[int], None] | None = None, label: str = "file",
          cancel: threading.Event | None = None, buffers: int = BUFFERS, keep_cache: bool = False,
          on_retry: Callable[[str], None] | None = None) -> TransferResult:
    """Fetch the file ``ranges`` opens into ``part``. ``expect`` is the source's identity of the
    file version: a part begun for another version, or another size, starts over. Setting
    ``cancel`` raises ``Cancelled`` within about HANDOFF seconds, leaving the part resumable.
    Pages written are dropped from the page cache once on disk, unless ``keep_cache``."""
    hasher, kept_under = part.resume(expect, size, algs, progress)
    ranges.resumed(kept_under)
    bound = ranges.validator
    resumed_from, fetched, restarts, failures = hasher.count, 0, 0, 0

    def persist() -> None:
        """Bind later resumes to the validator of what the source is sending now."""
        nonlocal bound
        if ranges.validator != bound:
            bound = ranges.validator
            part.save_state(PartState(expect, size, bound))

    def stop_if_cancelled() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{label}: cancelled at byte {hasher.count}")

    while size is None or hasher.count < size:
        before = hasher.count
        stop_if_cancelled()
        try:
            opened = ranges.open(hasher.count)
            if opened is None:  # nothing left to send
                break
            if not before:
                persist()
            with _closing(opened.body), \
                    open(part.path, "ab" if before else "wb", buffering=0, opener=nofollow) as fh, \
                    writing(fh, before, hasher.sinks(), buffers, keep_cache, size=CHUNK) as pipe:
                received = _pump(opened.body, pipe, hasher, progress, cancel, size, speed)
            fetched += hasher.count - before
            stop_if_cancelled()
            if opened.length is not None and received < opened.length:
                raise ShortBody(f"body ended after {received} of {opened.length} bytes")
            if size is None:
                break  # the body ended: that is the whole file
        except Restart as why:
            fetched += hasher.count - before
            restarts += 1
            if restarts > policy.attempts:
                raise HubError(f"{label}: the server kept changing the file ({why})") from None
            persist()
            if progress:
                progress(-hasher.count)
            hasher = MultiHasher(algs, size)
            part.truncate()
        except (TooSlow, ShortBody, *ranges.transient) as e:
            fetched += hasher.count - before
            slow = isinstance(e, TooSlow)  # progress at a crawl still counts against the budget
            failures = 0 if hasher.count > before and not slow else failures + 1
            reason = str(e) if isinstance(e, (TooSlow, ShortBody)) else ranges.reason(e)
            if failures >= policy.attempts:
                raise HubError(f"{label}: transfer failed {failures} times in a row at byte "
                               f"{hasher.count}: {reason}") from None
            pause = policy.pause(failures)
            if on_retry:
                on_retry(f"{label}: {reason} at byte {hasher.count}; resuming in {pause:.1f} s "
                         f"(attempt {failures + 1}/{policy.attempts})")
            if cancel is not None and cancel.wait(pause):
                raise Cancelled(f"{label}: cancelled at byte {hasher.count}") from None
            if cancel is None:
                time.sleep(pause)
        except OSError as e:
            raise DiskError(f"cannot write {part.path}: {e.strerror or e}") from None
    return TransferResult(hasher.hexdigests(), hasher.count, fetched, resumed_from, restarts)


class _closing:
    def __init__(self, body: Body):
        self.body = body

    def __enter__(self):
        return self.body

    def __exit__(self, *exc):
        self.body.close()


def _pump(body: Body, pipe: Pipeline, hasher: MultiHasher, progress, cancel: threading.Event | None,
          size: int | None, speed: SpeedLimit) -> int:
    """Move the body into the pipeline's buffers; nothing else happens here.

    A buffer is handed on when full, at the end, after HANDOFF seconds, on cancel, and, with
    whatever it holds, when the connection fails: every byte that arrived is written and
    hashed, so a resume starts exactly where this attempt stopped.
    """
    received = 0
    eof = False
    guard = _SpeedGuard(speed.min_bps, speed.window, time.monotonic())
    while not eof and not (cancel is not None and cancel.is_set()):
        slot, buf = pipe.acquire()
        filled, deadline = 0, time.monotonic() + HANDOFF
        try:
            while filled < len(buf):
                chunk = body.read1(len(buf) - filled)
                if not chunk:
                    eof = True
                    break
                buf[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    break
        finally:
            pipe.submit(slot, filled)
            hasher.advance(filled)
            received += filled
            if progress and filled:
                progress(filled)
        if size is not None and hasher.count > size:
            raise Restart(f"the server sent more than the {size} bytes announced")
        guard.update(filled)
    return received


@dataclass
class _SpeedGuard:
    min_bps: float
    window: float
    started: float = 0.0
    got: int = 0

    def update(self, n: int) -> None:
        self.got += n
        elapsed = time.monotonic() - self.started
        if not self.min_bps or elapsed < self.window:
            return
        if self.got < self.min_bps * elapsed:
            raise TooSlow(f"slower than WEIGHTSAFE_MIN_SPEED={self.min_bps:g} B/s "
                          f"({self.got / elapsed:.0f} B/s over {elapsed:.0f} s)")
        self.started, self.got = time.monotonic(), 0


__all__ = ["Cancelled", "Opened", "PartFile", "PartState", "Ranges", "Restart", "RetryPolicy", "ShortBody",
           "SpeedLimit", "TooSlow", "TransferResult", "fetch"]
