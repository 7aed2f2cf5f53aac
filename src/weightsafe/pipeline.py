"""Fan large buffers out to one thread per consumer: each digest, and the disk writer.

Why: a single thread that reads, hashes with every algorithm and writes in turn is bounded by
the *sum* of those costs, and takes the GIL once per small chunk for each of them. Here the
producer (a socket or file reader) only fills 1 MiB buffers; every consumer runs on
its own thread (hashlib, xxhash and file writes release the GIL on large buffers), so a file
is bounded by its slowest consumer. A fixed pool of buffers is the only memory used: when
consumers fall behind, the producer waits for a free buffer, so memory stays flat at any size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from typing import Callable, Sequence

# Each buffer is passed over by every consumer (a read or receive, 2-3 digests, a write): at
# 1 MiB, a file's 4 buffers stay in the CPU's cache between those passes. Measured on 2 cores:
# a 1 GiB pull in 9 files 3.12 s with 1 MiB buffers vs 3.32 s with 2 MiB and 3.68 s with 4 MiB
# (medians of 5), verify --full 1.72 s vs 1.76 s with 3 x 4 MiB; still few GIL round trips.
BUFFER = 1024 * 1024  # bytes per buffer
BUFFERS = 4           # buffers per pipeline: one filling, the rest being consumed

Sink = Callable[[memoryview], object]


class Pipeline:
    """Hand each filled buffer to every sink, each on its own thread, in order.

    Use as a context manager; leaving it waits until every sink has consumed every buffer
    submitted, then re-raises the first error a sink hit (a full disk, say), so that what was
    handed over is either fully written and hashed or reported.
    """

    def __init__(self, sinks: Sequence[Sink], buffers: int = BUFFERS, size: int = BUFFER):
        self._views = [memoryview(bytearray(size)) for _ in range(max(1, buffers))]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(len(self._views)):
            self._free.put(i)
        self._pending = [0] * len(self._views)
        self._lock = threading.Lock()  # guards _pending: taken once per buffer per sink, not per chunk
        self._queues: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in sinks]
        self.error: BaseException | None = None
        self._threads = [threading.Thread(target=self._run, args=(sink, q), daemon=True,
                                          name=f"weightsafe-sink-{i}")
                         for i, (sink, q) in enumerate(zip(sinks, self._queues))]
        for t in self._threads:
            t.start()

    def acquire(self) -> tuple[int, memoryview]:
        """A free buffer to fill (waits while every buffer is still being consumed)."""
        self._raise()
        slot = self._free.get()
        return slot, self._views[slot]

    def submit(self, slot: int, n: int) -> None:
        """Give the first ``n`` bytes of buffer ``slot`` to every sink; ``n == 0`` just frees it."""
        if n <= 0 or not self._queues:
            self._free.put(slot)
            return
        self._pending[slot] = len(self._queues)
        for q in self._queues:
            q.put((slot, n))
        self._raise()

    def close(self) -> None:
        """Wait for every sink to finish; raise the first error any of them hit."""
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()
        self._queues = []
        self._raise()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except BaseException as sink_error:  # a sink's failure (say ENOSPC) explains more than the symptom
            if sink_error is exc:
                raise
            raise sink_error from exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self, sink: Sink, q: queue.SimpleQueue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            slot, n = item
            if self.error is None:
                try:
                    sink(self._views[slot][:n])
                except BaseException as e:  # reported to the producer; keep freeing buffers
                    with self._lock:
                        self.error = self.error or e
            with self._lock:
                self._pending[slot] -= 1
                last = self._pending[slot] == 0
            if last:
                self._free.put(slot)


class Inline:
    """The Pipeline's interface without threads: each buffer goes through the sinks in turn, in
    the producer's thread. For sinks cheaper than producing the bytes (xxh3 hashes at ~36 GB/s,
    a cached read copies at ~4), handing every buffer to other threads costs more than it overlaps:
    the fingerprint verify of 1 GiB from the page cache read at 2.3-3.6 GB/s through a Pipeline,
    3.8-4.0 inline, as fast as `cat`."""

    def __init__(self, sinks: Sequence[Sink], size: int = BUFFER):
        self._sinks = list(sinks)
        self._view = memoryview(bytearray(size))

    def acquire(self) -> tuple[int, memoryview]:
        return 0, self._view

    def submit(self, slot: int, n: int) -> None:
        if n > 0:
            for sink in self._sinks:
                sink(self._view[:n])

    def __enter__(self) -> "Inline":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        pass


# ---------------------------------------------------------------- writing with early writeback

SYNC_EVERY = 16 * 1024 * 1024   # ask for a flush after each 16 MiB written...
SYNC_INTERVAL = 0.05            # ...but not more often than this (a flush per few ms on a fast disk)
DIRTY_LIMIT = 64 * 1024 * 1024  # written but not yet flushed, per file: beyond it the writer waits


class Writer:
    """A sink that appends to an open file while a flusher thread pushes it to disk behind it.

    Why: the commit's fsync must not start flushing a whole multi-GB file only after the last
    byte arrived. Every 16 MiB (at most every 50 ms) the writer asks its flusher for an
    fdatasync and goes on writing, so the flush overlaps the writes of the same file; only when
    64 MiB are written but not yet flushed does it wait, which keeps dirty memory bounded.
    Measured on this project's 2-core machines: fdatasync every 16 MiB beat sync_file_range
    windows handed to writeback (1 GiB in 9 files, median 3.65 s vs 4.08 s, 6 rounds), and
    running it beside the writes rather than between them (one 1 GiB file: see BENCHMARKS.md).

    Once a flush is done, the pages it wrote are dropped from the page cache (FADV_DONTNEED)
    unless ``keep_cache``: a 100 GB pull then does not evict what the machine had cached, and the
    freed pages are the ones the next writes reuse. On this project's VMs that reuse is most of
    the gain: a page the guest has not touched lately costs the hypervisor a fault to back, and
    writing 1 GiB into such pages took 0.7-1.5 CPU-s of kernel time against 0.3 CPU-s into
    recycled ones; a 1 GiB pull in 9 files fell from 4.4 to 3.75 CPU-s (2.76 to 2.51 s).
    Call ``close`` when done: it stops the flusher and raises the error a flush hit, if any.
    """

    def __init__(self, fd: int, start: int = 0, keep_cache: bool = False):
        self.fd = fd
        self.pos = start
        self.keep_cache = keep_cache
        self._asked, self._asked_at = start, time.monotonic()
        self._flushed = start            # a finished flush covered (and dropped) everything before this
        self._want: int | None = None    # a flush asked for (up to here) and not yet begun
        self._busy = False
        self._done = False
        self.error: OSError | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, view: memoryview) -> None:
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.pos += n
        if self.pos - self._asked >= SYNC_EVERY and time.monotonic() - self._asked_at >= SYNC_INTERVAL:
            self._ask()
        if self.pos - self._flushed > DIRTY_LIMIT:
            with self._cond:
                while self.pos - self._flushed > DIRTY_LIMIT and self.error is None:
                    if self._want is None and not self._busy:
                        self._ask()
                    self._cond.wait()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def _ask(self) -> None:
        with self._cond:
            self._want, self._asked, self._asked_at = self.pos, self.pos, time.monotonic()
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._flush, daemon=True, name="weightsafe-flush")
                self._thread.start()

    def _flush(self) -> None:
        while True:
            with self._cond:
                while self._want is None and not self._done:
                    self._cond.wait()
                if self._want is None:
                    return
                target, self._want, self._busy = self._want, None, True
            error = None
            try:
                _fdatasync(self.fd)
                if not self.keep_cache and target > self._flushed:  # only this thread moves _flushed
                    drop_pages(self.fd, self._flushed, target - self._flushed)
            except OSError as e:
                error = e
            with self._cond:
                self._busy = False
                if error is not None:
                    self.error = self.error or error
                else:
                    self._flushed = max(self._flushed, target)
                self._cond.notify_all()


@contextlib.contextmanager
def writing(fh, start: int, sinks: Sequence[Sink], buffers: int = BUFFERS, keep_cache: bool = False,
            size: int = BUFFER):
    """A Pipeline whose last sink is a Writer appending to the open file ``fh`` from ``start``:
    what a download fills. Leaving it waits for every sink, then stops the flusher (raising a
    flush's error) before the caller closes the file."""
    writer = Writer(fh.fileno(), start, keep_cache)
    try:
        with Pipeline([*sinks, writer], buffers=buffers, size=size) as pipe:
            yield pipe
    finally:
        writer.close()


_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
_fadvise = getattr(os, "posix_fadvise", None)     # nor posix_fadvise


def drop_pages(fd: int, offset: int = 0, length: int = 0) -> None:
    """Drop a range of the file's clean pages from the page cache (length 0: to the end), where
    the system can; pages still dirty or busy stay."""
    _advise(fd, offset, length, "POSIX_FADV_DONTNEED")


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    """Advice is never worth failing for: a system or file system without it is left alone."""
    if _fadvise is not None:
        try:
            _fadvise(fd, offset, length, getattr(os, advice))
        except OSError:
            pass


# ---------------------------------------------------------------- reading files

def read_file(path: str | os.PathLike, sinks: Sequence[Sink], limit: int | None = None,
              progress: Callable[[int], None] | None = None, keep_cache: bool = False,
              threads: bool = True) -> int:
    """Read ``path`` (or its first ``limit`` bytes) once, through every sink: in parallel, each
    on its own thread, or with ``threads=False`` in this thread (for sinks cheaper than the read).

    Large sequential reads with the kernel told so (FADV_SEQUENTIAL); unless ``keep_cache``, the
    pages read are dropped after (FADV_DONTNEED), so verifying a 100 GB model does not evict
    what the machine was using the page cache for. Returns the bytes read.
    """
    total = 0
    with open(path, "rb", buffering=0) as fh, (Pipeline(sinks) if threads else Inline(sinks)) as pipe:
        fd = fh.fileno()
        _advise(fd, 0, 0, "POSIX_FADV_SEQUENTIAL")
        while limit is None or total < limit:
            slot, buf = pipe.acquire()
            want = len(buf) if limit is None else min(len(buf), limit - total)
            n = fh.readinto(buf[:want])
            pipe.submit(slot, n or 0)
            if not n:
                break
            if not keep_cache:
                drop_pages(fd, total, n)
            total += n
            if progress:
                progress(n)
        if not keep_cache:  # and any page that was busy (being read ahead) when its turn came
            drop_pages(fd, 0, total)
    return total
