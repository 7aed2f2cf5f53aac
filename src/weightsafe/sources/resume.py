"""Resumable download of one file into a ``.part`` file, hashing every byte as it arrives.

Resume is bound to the validator the hub gave (Range + If-Range): if the server ignores the
Range, or the ETag changed (a new upload), the part is started over, so bytes of two
versions are never mixed. The bytes already on disk are re-read through the hashers before
resuming (a local read, far cheaper than the network). A dropped or stalled connection
(read timeout) is resumed from the current offset with backoff; an attempt that made progress
does not count against the retry budget.

The hot path is a pipeline (pipeline.py): this thread only moves bytes from the socket into
large buffers; each digest and the disk writer consume them on their own threads, and the
writer hands dirty pages to writeback as it goes, so the commit's fsync overlaps the download.
A ``cancel`` event stops a transfer at the next buffer boundary with the part resumable.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
import urllib3

from ..errors import DiskError, HubError, IntegrityError
from ..fsutil import atomic_write, nofollow, read_json_object, refuse_planted
from ..hashing import MultiHasher, feed_file
from ..pipeline import BUFFER, BUFFERS, Pipeline, writing
from .http import HubClient, _reason, describe_http_error

CHUNK = BUFFER  # bytes per buffer: cache-sized (see pipeline.py), little lost in flight to a kill -9
HANDOFF = 0.01           # seconds: bytes are handed on (to disk, to progress) at least this often, so a kill -9 loses little
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
STREAM_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                 requests.exceptions.Timeout, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


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


class _Restart(Exception):
    """The server sent a different representation; the part must start over.

    ``etag`` is the validator of what the server now serves, when it said: later attempts bind
    to it, and the digests decide whether that new content is acceptable (usually not).
    """

    def __init__(self, why: str, etag: str | None = None):
        super().__init__(why)
        self.etag = etag


@dataclass(frozen=True)
class PartState:
    """What a part's bytes were begun for: the file version (``expect``, the hub's ETag at HEAD
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
        """Reopen the part for the file version ``expect`` of ``size`` bytes, for any source (HTTP,
        S3). Bytes begun for another version or size are discarded; kept bytes are re-read through
        a fresh hasher (a local read, cheaper than the network). Returns the hasher, whose count is
        the offset to resume from, and the validator the kept bytes were fetched under."""
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

    def discard(self) -> None:
        for p in (self.path, self.state_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def download(client: HubClient, url: str, part: PartFile, algs: tuple[str, ...], size: int | None,
             expect: str | None, progress: Callable[[int], None] | None = None,
             max_attempts: int | None = None, backoff: float | None = None, label: str | None = None,
             cancel: threading.Event | None = None, buffers: int = BUFFERS,
             keep_cache: bool = False) -> TransferResult:
    """Fetch ``url`` into ``part``. ``expect`` is the hub's identity of the file version (its
    ETag at HEAD time): a part begun for another version, or another size, starts over.
    Setting ``cancel`` raises ``Cancelled`` within about HANDOFF seconds, leaving the part resumable.
    Pages written are dropped from the page cache once on disk, unless ``keep_cache`` (see Writer)."""
    hasher, validator = part.resume(expect, size, algs, progress)
    resumed_from, fetched, restarts, failures = hasher.count, 0, 0, 0
    label = label or url.rsplit("/", 1)[-1]
    max_attempts = max_attempts if max_attempts is not None else client.retries + 1
    backoff = backoff if backoff is not None else client.backoff

    def remember(new: str | None) -> None:
        """Bind later resumes to the validator of what the server is sending now."""
        nonlocal validator
        if new != validator:
            validator = new
            part.save_state(PartState(expect, size, validator))

    while size is None or hasher.count < size:
        before = hasher.count
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{label}: cancelled at byte {hasher.count}")
        try:
            done = _attempt(client, url, part, hasher, validator, size, progress, remember, label, cancel, buffers,
                            keep_cache)
            fetched += hasher.count - before
            if done:
                break
        except _Restart as why:
            fetched += hasher.count - before
            restarts += 1
            if restarts > max_attempts:
                raise HubError(f"{label}: the server kept changing the file ({why})") from None
            remember(why.etag)
            if progress:
                progress(-hasher.count)
            hasher = MultiHasher(algs, size)
            with open(part.path, "wb", opener=nofollow):
                pass
            continue
        except STREAM_ERRORS as e:
            fetched += hasher.count - before
            slow = isinstance(e, TooSlow)  # progress at a crawl still counts against the budget
            failures = 0 if hasher.count > before and not slow else failures + 1
            if failures >= max_attempts:
                raise HubError(f"{label}: transfer failed {failures} times in a row at byte "
                               f"{hasher.count}: {e if slow else _reason(e)}") from None
            pause = min(backoff * 2 ** failures, 10)
            client.tell_retry(f"{label}: {e if slow else _reason(e)} at byte {hasher.count}; resuming in "
                              f"{pause:.1f} s (attempt {failures + 1}/{max_attempts})")
            if cancel is not None and cancel.wait(pause):
                raise Cancelled(f"{label}: cancelled at byte {hasher.count}")
            if cancel is None:
                time.sleep(pause)
            continue
        except OSError as e:
            raise DiskError(f"cannot write {part.path}: {e.strerror or e}") from None
    return TransferResult(hasher.hexdigests(), hasher.count, fetched, resumed_from, restarts)


def _attempt(client: HubClient, url: str, part: PartFile, hasher: MultiHasher, validator: str | None,
             size: int | None, progress, remember: Callable[[str | None], None], label: str,
             cancel: threading.Event | None = None, buffers: int = BUFFERS, keep_cache: bool = False) -> bool:
    """One GET from the current offset; returns True when the whole body arrived."""
    offset = hasher.count
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    resp = client.request("GET", url, headers=headers, stream=True, what=label)
    with resp:
        if resp.status_code == 416 and size is not None and offset >= size:
            return True
        if resp.status_code >= 400:
            raise describe_http_error(resp, label, client.endpoint)
        got = resp.headers.get("ETag")
        if resp.status_code == 206:
            m = CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset or (size is not None and m.group(3) not in (str(size), "*")):
                raise _Restart(f"bad Content-Range {resp.headers.get('Content-Range')!r} for offset {offset}")
            if validator and got and _norm(got) != _norm(validator):
                raise _Restart(f"a range of another version (ETag {got}, resuming {validator})", got)
            expected_len = int(m.group(2)) - offset + 1
        elif offset:
            raise _Restart("the server ignored the Range request, or the file changed (ETag "
                           f"{validator} -> {got})", got)
        else:
            expected_len = None
            announced = resp.headers.get("Content-Length")
            if size is not None and announced is not None and announced.isdigit() and int(announced) != size:
                raise IntegrityError(f"{label}: the server announced {announced} bytes, "
                                     f"expected {size}; refusing a different file")
            remember(got)
        mode = "ab" if offset else "wb"
        with open(part.path, mode, buffering=0, opener=nofollow) as fh, \
                writing(fh, offset, hasher.sinks(), buffers, keep_cache, size=CHUNK) as pipe:
            guard = SpeedGuard(client.min_speed, client.min_speed_window, time.monotonic())
            received = _pump(resp.raw, pipe, hasher, progress, cancel, size, guard)
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{label}: cancelled at byte {hasher.count}")
        if expected_len is not None and received < expected_len:
            raise requests.exceptions.ChunkedEncodingError(f"body ended after {received} of {expected_len} bytes")
        return size is None or hasher.count >= size




def _pump(raw, pipe: Pipeline, hasher: MultiHasher, progress, cancel: threading.Event | None,
          size: int | None, guard: "SpeedGuard") -> int:
    """Move the body from the socket into the pipeline's buffers; nothing else happens here.

    A buffer is handed on when full, at the end, after HANDOFF seconds, on cancel, and, with
    whatever it holds, when the connection fails: every byte that arrived is written and
    hashed, so a resume starts exactly where this attempt stopped.
    """
    received = 0
    eof = False
    while not eof and not (cancel is not None and cancel.is_set()):
        slot, buf = pipe.acquire()
        filled, deadline = 0, time.monotonic() + HANDOFF
        try:
            while filled < len(buf):
                chunk = raw.read1(len(buf) - filled, decode_content=False)
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
            raise _Restart(f"the server sent more than the {size} bytes announced")
        guard.update(filled)
    return received


class TooSlow(requests.exceptions.ConnectionError):
    """A transfer stayed under the minimum throughput for a whole window: cut, then resumed."""


@dataclass
class SpeedGuard:
    """Cut a connection that trickles (a byte a second never trips the read timeout):
    ``WEIGHTSAFE_MIN_SPEED`` bytes/s (default 1024; 0 turns it off), averaged over
    ``WEIGHTSAFE_MIN_SPEED_WINDOW`` seconds (default 30)."""

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


def _norm(etag: str) -> str:
    etag = etag.strip()
    return (etag[2:] if etag.startswith("W/") else etag).strip('"')
