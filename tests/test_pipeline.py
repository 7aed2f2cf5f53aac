"""The pipelined hot path: every byte reaches every digest and the disk exactly once, in order;
a failing consumer is reported, never lost; memory is a fixed pool; a cancelled download stops
promptly and resumes exactly where it stopped."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from weightsafe import pipeline
from weightsafe.sources import resume as transfer
from weightsafe.hashing import FINGERPRINT_ALG, MultiHasher, hash_file
from weightsafe.sources.hub import HubSource
from weightsafe.pipeline import Pipeline, Writer, read_file
from weightsafe.sources.resume import PartFile, PartState


@given(pieces=st.lists(st.binary(max_size=300), max_size=40), size=st.sampled_from([1, 7, 64, 4096]),
       buffers=st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_every_sink_sees_every_byte_once_and_in_order(pieces, size, buffers):
    seen = [bytearray(), bytearray(), bytearray()]
    sinks = [lambda v, out=out: out.extend(v) for out in seen]
    with Pipeline(sinks, buffers=buffers, size=size) as pipe:
        for piece in pieces:
            while piece:
                slot, buf = pipe.acquire()
                n = min(len(buf), len(piece))
                buf[:n] = piece[:n]
                pipe.submit(slot, n)
                piece = piece[n:]
    assert all(bytes(s) == b"".join(pieces) for s in seen)


def test_a_failing_sink_is_raised_to_the_producer_and_the_others_drain():
    got = bytearray()

    def full_disk(view):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        with Pipeline([got.extend, full_disk], buffers=2, size=8) as pipe:
            for _ in range(10):  # more buffers than the pool: a stuck pool would hang here
                slot, buf = pipe.acquire()
                buf[:8] = b"x" * 8
                pipe.submit(slot, 8)


def test_the_producer_waits_for_the_slowest_sink_so_memory_is_a_fixed_pool():
    release = threading.Event()
    pipe = Pipeline([lambda v: release.wait()], buffers=2, size=16)
    for _ in range(2):
        slot, _buf = pipe.acquire()
        pipe.submit(slot, 16)
    third = threading.Thread(target=pipe.acquire, daemon=True)
    third.start()
    third.join(0.3)
    assert third.is_alive()  # both buffers are held by the sink: no third one is allocated
    release.set()
    third.join(5)
    assert not third.is_alive()
    pipe.close()


def test_the_writer_flushes_behind_itself_with_bounded_dirty_bytes_and_writes_every_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "SYNC_EVERY", 1000)
    monkeypatch.setattr(pipeline, "SYNC_INTERVAL", 0)
    monkeypatch.setattr(pipeline, "DIRTY_LIMIT", 5000)
    synced = []

    def slow_fdatasync(fd):
        synced.append(os.fstat(fd).st_size)
        time.sleep(0.002)

    monkeypatch.setattr(pipeline, "_fdatasync", slow_fdatasync)
    data = os.urandom(50_000)
    with open(tmp_path / "f", "wb", buffering=0) as fh:
        w = Writer(fh.fileno())
        for i in range(0, len(data), 777):
            w(memoryview(data[i:i + 777]))
            assert w.pos - (synced[-1] if synced else 0) <= 5000  # never more than the limit unflushed
        w.close()
    assert (tmp_path / "f").read_bytes() == data and w.pos == len(data)
    assert len(synced) >= 5 and synced == sorted(synced)


def test_a_flush_that_fails_is_raised_by_the_writer(tmp_path, monkeypatch):
    import errno

    monkeypatch.setattr(pipeline, "SYNC_EVERY", 1000)
    monkeypatch.setattr(pipeline, "SYNC_INTERVAL", 0)

    def failing(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(pipeline, "_fdatasync", failing)
    with open(tmp_path / "f", "wb", buffering=0) as fh:
        w = Writer(fh.fileno())
        with pytest.raises(OSError, match="Input/output"):
            for _ in range(100):
                w(memoryview(b"x" * 777))
            w.close()


def resident(path, size: int) -> float:
    """The share of ``path``'s first ``size`` bytes in the page cache: a read told not to wait
    (RWF_NOWAIT) succeeds only for a page already there. A miss still starts reading that page
    (no further: readahead is off for this descriptor), so probe once per state."""
    fd, buf, hits = os.open(path, os.O_RDONLY), bytearray(4096), 0
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        offsets = range(0, size, 4096)
        for off in offsets:
            try:
                os.preadv(fd, [buf], off, os.RWF_NOWAIT)
                hits += 1
            except BlockingIOError:
                pass
        return hits / len(offsets)
    finally:
        os.close(fd)


@pytest.fixture
def page_cache(tmp_path):
    """Skip where pages cannot be dropped (tmpfs keeps them) or residency cannot be seen."""
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no preadv2(RWF_NOWAIT) here")
    probe = tmp_path / "probe"
    probe.write_bytes(os.urandom(1 << 20))
    fd = os.open(probe, os.O_RDONLY)
    try:
        kept = resident(probe, 1 << 20)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if kept < 0.9 or resident(probe, 1 << 20) > 0.1:
        pytest.skip("this file system does not show or drop page-cache pages")
    return resident


@pytest.mark.parametrize("keep_cache", [False, True])
def test_the_writer_drops_what_it_flushed_from_the_page_cache_unless_asked_to_keep_it(page_cache, tmp_path,
                                                                                      monkeypatch, keep_cache):
    monkeypatch.setattr(pipeline, "SYNC_EVERY", 1 << 20)
    monkeypatch.setattr(pipeline, "SYNC_INTERVAL", 0)
    flushed = []
    monkeypatch.setattr(pipeline, "_fdatasync", lambda fd: (os.fdatasync(fd), flushed.append(os.fstat(fd).st_size)))
    data = os.urandom(8 << 20)
    with open(tmp_path / "f", "wb", buffering=0) as fh:
        w = Writer(fh.fileno(), keep_cache=keep_cache)
        for n, i in enumerate(range(0, len(data), 1 << 20), start=1):
            w(memoryview(data[i:i + (1 << 20)]))
            deadline = time.monotonic() + 10  # let each flush finish: on a busy box asks would coalesce
            while len(flushed) < n and time.monotonic() < deadline:
                time.sleep(0.001)
        w.close()
    assert len(flushed) >= 2
    share = page_cache(tmp_path / "f", flushed[0])
    assert share > 0.95 if keep_cache else share < 0.05
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("keep_cache", [False, True])
def test_pull_and_verify_drop_the_pages_they_wrote_or_read_unless_asked_to_keep_them(page_cache, env, seeds, keep_cache):
    from weightsafe import api

    r = seeds["octocoder"]
    directory = api.pull("octocoder", include=["*.safetensors"], keep_cache=keep_cache)
    shards = [directory / p for p in r.files if p.endswith(".safetensors")]
    sizes = [len(r.files[p]) for p in r.files if p.endswith(".safetensors")]
    # the kernel may keep a page that was busy at that moment: mostly gone, or all there
    as_asked = (lambda share: share > 0.95) if keep_cache else (lambda share: share < 0.05)
    assert all(as_asked(page_cache(p, n)) for p, n in zip(shards, sizes))  # written, then dropped
    for p in shards:
        p.read_bytes()  # now cached: verify leaves what it found cached alone only when asked to keep it
    report = api.verify("octocoder", include=["*.safetensors"], full=True, keep_cache=keep_cache)
    assert report.ok
    assert all(as_asked(page_cache(p, n)) for p, n in zip(shards, sizes))


def test_the_cli_keeps_the_pages_with_keep_cache(page_cache, ws, seeds, cache_dir):
    from tests.conftest import model_dir

    r = seeds["octocoder"]
    assert ws("pull", "octocoder", "--include", "*.safetensors", "--keep-cache", "-q").code == 0
    shards = [(model_dir(cache_dir, r) / p, len(d)) for p, d in r.files.items() if p.endswith(".safetensors")]
    assert all(page_cache(p, n) > 0.95 for p, n in shards)
    assert ws("verify", "octocoder", "--full", "--include", "*.safetensors", "-q").code == 0
    assert all(page_cache(p, n) < 0.05 for p, n in shards)  # without the flag, verify drops what it read


def test_page_cache_advice_the_file_system_refuses_fails_nothing(tmp_path, monkeypatch):
    import errno

    def refuse(fd, offset, length, advice):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(pipeline, "_fadvise", refuse)
    monkeypatch.setattr(pipeline, "SYNC_EVERY", 1 << 16)
    monkeypatch.setattr(pipeline, "SYNC_INTERVAL", 0)
    data = os.urandom(1 << 20)
    with open(tmp_path / "f", "wb", buffering=0) as fh:
        w = Writer(fh.fileno())
        for i in range(0, len(data), 1 << 16):
            w(memoryview(data[i:i + (1 << 16)]))
        w.close()  # flushes happened, their drops were refused: no error
    assert hash_file(tmp_path / "f", ("sha256", FINGERPRINT_ALG))["sha256"] == hashlib.sha256(data).hexdigest()


def test_reading_a_file_hashes_it_once_with_every_algorithm_in_parallel(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    got = hash_file(tmp_path / "f", ("md5", "sha256", "git-sha1", FINGERPRINT_ALG))
    assert got["md5"] == hashlib.md5(data).hexdigest()
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["git-sha1"] == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    h = MultiHasher(("sha256",))
    assert read_file(tmp_path / "f", h.sinks(), limit=1000) == 1000


@pytest.fixture(scope="module")
def slow_hub():
    from tests.hub_server import HubReplica, HubState

    state = HubState()
    data = os.urandom(2_000_000)
    state.add_repo("cancel/model", "c" * 40, {"w.safetensors": data})
    with HubReplica(state) as hub:
        yield hub, data


def test_a_cancelled_download_stops_promptly_and_resumes_where_it_stopped(slow_hub, tmp_path):
    hub, data = slow_hub
    hub.state.faults.clear()
    hub.state.fault("throttle", host="cdn", times=1, bps=400_000)
    source = HubSource(hub.url, backoff=0.0)
    part = transfer.PartFile(tmp_path / "w.part")
    where = ("cancel/model", "c" * 40, "w.safetensors")
    sha = hashlib.sha256(data).hexdigest()
    cancel, got, asked = threading.Event(), [0], []

    def progress(n):
        got[0] += n
        if got[0] >= 300_000 and not cancel.is_set():
            cancel.set()
            asked.append(time.monotonic())

    with pytest.raises(transfer.Cancelled):
        source.download(*where, part, ("sha256",), len(data), f'"{sha}"', progress=progress, cancel=cancel)
    assert time.monotonic() - asked[0] < 2.0  # within a buffer hand-off (HANDOFF) plus scheduling slack on a busy CI box
    kept = part.size()
    assert 300_000 <= kept < len(data) and part.path.read_bytes() == data[:kept]
    result = source.download(*where, part, ("sha256",), len(data), f'"{sha}"')
    assert result.digests["sha256"] == sha and part.path.read_bytes() == data
    assert result.resumed_from == kept and result.fetched == len(data) - kept


def test_a_pull_hashes_each_byte_once_and_takes_the_fingerprint_from_the_same_pass(ws, seeds, monkeypatch):
    from weightsafe.hashing import MultiHasher

    hashed, algs = [0], set()
    advance, sinks = MultiHasher.advance, MultiHasher.sinks
    monkeypatch.setattr(MultiHasher, "advance", lambda self, n: (hashed.__setitem__(0, hashed[0] + n), advance(self, n)))
    monkeypatch.setattr(MultiHasher, "sinks", lambda self: (algs.update(self.algs), sinks(self))[1])
    res = ws("pull", "octocoder", "--include", "*.safetensors", "--json")
    assert res.code == 0, res
    pulled = sum(len(d) for p, d in seeds["octocoder"].files.items() if p.endswith(".safetensors"))
    assert hashed[0] == pulled and FINGERPRINT_ALG in algs and "sha256" in algs
    assert ws("verify", "octocoder").code == 0  # the fingerprint recorded by the pull is the right one


def test_jobs_follow_the_cores_and_the_file_count(monkeypatch):
    from weightsafe import concurrency

    monkeypatch.setattr(concurrency, "cores", lambda: 2)
    assert concurrency.pull_jobs(1) == 1 and concurrency.pull_jobs(8) == 4 and concurrency.verify_jobs(8) == 2
    monkeypatch.setattr(concurrency, "cores", lambda: 16)
    assert concurrency.pull_jobs(8) == 8 and concurrency.pull_jobs(100) == concurrency.MAX_FILES_IN_FLIGHT
    assert concurrency.verify_jobs(3) == 3 and concurrency.verify_jobs(100) == concurrency.MAX_FILES_IN_FLIGHT
    assert concurrency.pull_jobs(100, requested=12) == 12 and concurrency.verify_jobs(5, requested=1) == 1


def test_files_in_flight_share_one_buffer_budget_so_memory_stays_flat():
    from weightsafe import concurrency
    from weightsafe.pipeline import BUFFER, BUFFERS

    alone = concurrency.transfer_buffers(1)
    assert alone > BUFFERS and alone * BUFFER <= concurrency.TRANSFER_MEMORY  # a lone file may run ahead
    for jobs in range(1, 3 * concurrency.MAX_FILES_IN_FLIGHT):
        held = jobs * concurrency.transfer_buffers(jobs) * BUFFER
        assert held <= max(concurrency.TRANSFER_MEMORY, jobs * BUFFERS * BUFFER)


def test_a_part_resumes_only_for_the_file_version_and_size_it_was_begun_for(tmp_path):
    part = PartFile(tmp_path / "f.part")
    part.path.write_bytes(b"x" * 10)
    part.save_state(PartState('"v1"', 20, '"v1"'))
    hasher, validator = part.resume('"v1"', 20, ("sha256",))
    assert (hasher.count, validator) == (10, '"v1"')
    assert hasher.hexdigests()["sha256"] == hashlib.sha256(b"x" * 10).hexdigest()
    hasher, validator = part.resume('"v2"', 20, ("sha256",))  # a new upload: never mix versions
    assert (hasher.count, validator, part.size()) == (0, None, 0)
    assert part.state() == PartState('"v2"', 20, None)


def test_a_part_state_that_cannot_be_trusted_starts_the_part_over(tmp_path):
    part = PartFile(tmp_path / "f.part")
    part.path.write_bytes(b"x" * 10)
    part.state_path.write_text('{"expect": 5, "size": "10", "validator": ["e"]}')
    assert part.state() == PartState(None, None, None)
    hasher, validator = part.resume('"etag"', 20, ("sha256",))
    assert (hasher.count, validator, part.size()) == (0, None, 0)
