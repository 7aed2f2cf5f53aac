"""The source layer's contract: one resume loop serves every source, which only has to open its
file at an offset; one function decides an endpoint's kind; the HTTP and S3 stacks load only
when a source is opened."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

import pytest

from weightsafe.errors import HubError, UsageError
from weightsafe.settings import Settings
from weightsafe.sources import open_source
from weightsafe.sources.resume import Cancelled, Opened, PartFile, Restart, RetryPolicy, fetch

DATA = bytes(range(256)) * 4096  # 1 MiB


class Flaky(ConnectionError):
    pass


class _Body:
    def __init__(self, data: bytes, fail_after: int | None):
        self.data, self.pos, self.fail_after = data, 0, fail_after

    def read1(self, n: int) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise Flaky("connection reset")
        end = len(self.data) if self.fail_after is None else min(len(self.data), self.fail_after)
        chunk = self.data[self.pos:min(self.pos + min(n, 65536), end)]
        self.pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class MemoryRanges:
    """A whole source in a dozen lines: the bytes of one version, and what goes wrong."""

    transient = (Flaky,)

    def __init__(self, versions: list[bytes], drops: list[int] = (), change_at_open: int | None = None):
        self.versions, self.drops, self.change_at_open = versions, list(drops), change_at_open
        self.validator: str | None = None
        self.opens: list[int] = []

    def resumed(self, validator):
        self.validator = validator

    def reason(self, error):
        return str(error)

    def open(self, offset: int) -> Opened | None:
        self.opens.append(offset)
        if self.change_at_open == len(self.opens) and len(self.versions) > 1:
            self.versions.pop(0)
            self.validator = "v2"
            raise Restart("the file changed")
        data = self.versions[0]
        if offset >= len(data):
            return None
        if offset == 0:
            self.validator = "v1" if len(self.versions) > 1 else "v2"
        fail = self.drops.pop(0) - offset if self.drops else None
        return Opened(_Body(data[offset:], fail), len(data) - offset)


def test_a_source_that_only_opens_ranges_gets_resume_after_every_drop(tmp_path):
    ranges = MemoryRanges([DATA], drops=[100_000, 700_000])
    part = PartFile(tmp_path / "f.part")
    result = fetch(ranges, part, ("sha256",), len(DATA), "etag", policy=RetryPolicy(backoff=0.0))
    assert result.digests["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert ranges.opens == [0, 100_000, 700_000]  # each drop resumed where it stopped, never from 0
    assert result.fetched == len(DATA) and part.path.read_bytes() == DATA


def test_a_changed_representation_starts_the_part_over_and_binds_to_the_new_version(tmp_path):
    new = DATA[::-1]
    ranges = MemoryRanges([DATA, new], drops=[300_000], change_at_open=2)
    part = PartFile(tmp_path / "f.part")
    result = fetch(ranges, part, ("sha256",), len(DATA), "etag", policy=RetryPolicy(backoff=0.0))
    assert result.restarts == 1 and part.path.read_bytes() == new  # never a mix of two versions
    assert result.digests["sha256"] == hashlib.sha256(new).hexdigest()
    assert part.state().validator == "v2"


def test_drops_without_progress_end_in_one_typed_error_naming_the_attempts(tmp_path):
    ranges = MemoryRanges([DATA], drops=[0] * 10)
    lines = []
    with pytest.raises(HubError, match=r"transfer failed 3 times in a row at byte 0: connection reset"):
        fetch(ranges, PartFile(tmp_path / "f.part"), ("md5",), len(DATA), "etag",
              policy=RetryPolicy(attempts=3, backoff=0.0), label="f", on_retry=lines.append)
    assert lines == [f"f: connection reset at byte 0; resuming in 0.0 s (attempt {n}/3)" for n in (2, 3)]


def test_a_cancel_stops_the_loop_with_every_received_byte_kept(tmp_path):
    data = DATA * 4  # several buffers
    cancel, part = threading.Event(), PartFile(tmp_path / "f.part")
    with pytest.raises(Cancelled):
        fetch(MemoryRanges([data]), part, ("sha256",), len(data), "etag", cancel=cancel,
              progress=lambda n: cancel.set() if n > 0 else None)
    kept = part.size()
    assert 0 < kept < len(data) and part.path.read_bytes() == data[:kept]
    again = fetch(MemoryRanges([data]), part, ("sha256",), len(data), "etag")
    assert again.resumed_from == kept and part.path.read_bytes() == data


@pytest.mark.parametrize("endpoint, kind", [("http://127.0.0.1:9", "HubSource"),
                                            ("https://huggingface.co", "HubSource"),
                                            ("s3://bucket/prefix", "S3Source")])
def test_open_source_is_where_the_endpoint_decides_the_kind(endpoint, kind):
    pytest.importorskip("boto3")
    source = open_source(Settings(endpoint=endpoint))
    assert type(source).__name__ == kind and source.endpoint == endpoint


def test_an_endpoint_of_no_known_kind_is_a_usage_error():
    with pytest.raises(UsageError, match="ftp://x"):
        Settings().with_overrides(endpoint="ftp://x")


def test_commands_that_open_no_source_never_import_the_http_or_s3_stacks():
    code = ("import sys, weightsafe.cli, weightsafe.api; "
            "print(sorted(m for m in ('requests', 'boto3', 'botocore', 'urllib3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
