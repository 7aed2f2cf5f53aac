"""How many files to work on at once, from the machine's cores and the work's file count.

Why these numbers: each file in flight already runs one thread per digest plus a writer (see
pipeline.py), so files in parallel are there to fill the remaining cores and to hide one slow
connection behind others, not to multiply threads. Each file holds a fixed pool of buffers
(4 x 1 MiB), so the caps also keep peak memory under 200 MB at any model size.
"""

from __future__ import annotations

import os

from .pipeline import BUFFER, BUFFERS

TRANSFER_MEMORY = 16 * 1024 * 1024  # pipeline buffers shared by the files a pull has in flight
MAX_FILES_IN_FLIGHT = 8  # x 4 MiB of buffers: < 200 MB peak RSS with the interpreter and torch-free imports


def cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pull_jobs(files: int, requested: int | None = None) -> int:
    """Files fetched at once: at least 4 (latency hiding over the network), half the cores on big
    machines (each file also needs threads for its digests), never more than the files.

    Why 4 even on 2 cores: from a mirror on loopback 2 files are ~4% faster there (less thread
    contention, BENCHMARKS.md), but over the internet one CDN connection often carries less than
    a core hashes, and halving the connections would cost a 2-core CI runner far more."""
    if requested:
        return max(1, requested)
    return max(1, min(files, MAX_FILES_IN_FLIGHT, max(4, cores() // 2)))


def verify_jobs(files: int, requested: int | None = None) -> int:
    """Files hashed at once: one per core (hashing is CPU-bound), never more than the files."""
    if requested:
        return max(1, requested)
    return max(1, min(files, MAX_FILES_IN_FLIGHT, cores()))


def transfer_buffers(jobs: int) -> int:
    """Buffers per file in flight: a fixed budget shared by the files, at least BUFFERS each.

    Why: the writer flushes every 16 MiB, and while it waits on the disk the receiver keeps
    filling buffers. With several files in flight the others keep the cores busy, but a lone
    file stalls unless it has room to run ahead (1 GiB in one file: 4.0 s with 16 buffers vs
    4.5 s with 4, medians of 4 here). Peak memory stays flat: the budget does not grow with jobs.
    """
    return max(BUFFERS, TRANSFER_MEMORY // (BUFFER * max(1, jobs)))
