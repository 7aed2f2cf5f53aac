"""Object storage as a source: ``--endpoint s3://bucket/prefix`` (or ``HF_ENDPOINT``) reads a tree
``mirror export`` wrote, through the S3 API (boto3: ``weightsafe[s3]``).

A bucket has no listing API: its listing is the manifest the tree publishes (``StaticMirror``).
Downloads go into the same ``.part`` + state files as HTTP ones, through the same resume loop
(resume.py): ranged GETs resume from the bytes on disk, bound to the object's ETag with If-Match
(an object replaced meanwhile starts over rather than mixing two versions), every byte goes through
the hashers and the caller compares every digest before anything reaches its final path.
"""

from __future__ import annotations

import threading
from typing import Callable

from ..errors import NoHubAPI, NotFound
from ..layout import file_relpath
from ..pipeline import BUFFERS
from ..s3client import BucketClient, _boto3, describe_error, first_line
from .base import Published, RemoteFile
from .mirror import StaticMirror
from .resume import Opened, PartFile, Restart, RetryPolicy, SpeedLimit, TransferResult, fetch


class S3Source(BucketClient):
    """A mirror tree in a bucket, read as a source."""

    def __init__(self, endpoint: str, offline: bool = False, read_timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5, on_retry: Callable[[str], None] | None = None, max_pool: int = 32,
                 min_speed: float = 1024.0, min_speed_window: float = 30.0):
        super().__init__(endpoint, offline=offline, read_timeout=read_timeout, retries=retries, backoff=backoff,
                         on_retry=on_retry, max_pool=max_pool)
        self.min_speed, self.min_speed_window = min_speed, min_speed_window

    @classmethod
    def from_settings(cls, settings, on_retry: Callable[[str], None] | None = None) -> "S3Source":
        return cls(settings.endpoint, offline=settings.offline, read_timeout=settings.read_timeout,
                   retries=settings.retries, backoff=settings.backoff, on_retry=on_retry,
                   min_speed=settings.min_speed, min_speed_window=settings.min_speed_window)

    def key(self, repo: str, revision: str, path: str) -> str:
        return self.bucket.key(file_relpath(repo, revision, path))

    # ---------------------------------------------------------------- Source
    def stat(self, repo: str, revision: str, path: str) -> RemoteFile:
        h = self.call("head_object", f"{repo}@{revision[:12]}: {path}", Key=self.key(repo, revision, path))
        return RemoteFile(path=path, size=h.get("ContentLength"), etag=h.get("ETag"), sha256=None,
                          git_sha1=None, commit=None)

    def listing(self, repo: str, revision: str) -> Published:
        """The manifest the tree publishes: a bucket has no listing API of its own."""
        why = f"{repo}@{revision}: {self.endpoint} is object storage, not a hub API"
        published = StaticMirror(self).published(repo, revision, why)
        if published is None:
            raise NoHubAPI(why)
        return published

    def read_small(self, repo: str, revision: str, path: str, limit: int | None = None) -> bytes | None:
        """A small object (a manifest) of the mirror tree, at most ``limit`` bytes of it, or None
        when it is not there."""
        try:
            body = self.call("get_object", f"{repo}@{revision}: {path}", Key=self.key(repo, revision, path))["Body"]
        except NotFound:
            return None
        try:
            return body.read(limit) if limit is not None else body.read()
        finally:
            body.close()

    def download(self, repo: str, revision: str, path: str, part: PartFile, algs: tuple[str, ...],
                 size: int | None, expect: str | None, *, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None, buffers: int | None = None,
                 keep_cache: bool = False, policy: RetryPolicy | None = None) -> TransferResult:
        """Fetch one object into ``part`` with ranged GETs bound by If-Match to ``expect`` (its ETag
        at HEAD time), through the one resume loop."""
        return fetch(_S3Ranges(self, self.key(repo, revision, path), size, expect, path), part, algs, size, expect,
                     policy=policy or RetryPolicy(self.retries + 1, self.backoff),
                     speed=SpeedLimit(self.min_speed, self.min_speed_window), progress=progress, label=path,
                     cancel=cancel, buffers=buffers or BUFFERS, keep_cache=keep_cache, on_retry=self.on_retry)


class _S3Ranges:
    """One object, opened at an offset with Range and If-Match (S3 resumes bind to the ETag
    itself, so the part's own validator is not used)."""

    def __init__(self, source: S3Source, key: str, size: int | None, expect: str | None, label: str):
        _, botocore = _boto3()
        self.source, self.key, self.size, self.label = source, key, size, label
        self.validator = expect
        self.transient = (botocore.exceptions.BotoCoreError, ConnectionError, TimeoutError)

    def resumed(self, validator: str | None) -> None:
        """Nothing to restore: If-Match names the version the part was begun for."""

    def reason(self, error: BaseException) -> str:
        return first_line(error)

    def open(self, offset: int) -> Opened | None:
        from botocore import exceptions as bx

        kw = {"Key": self.key}
        if self.validator:
            kw["IfMatch"] = self.validator
        if offset:
            kw["Range"] = f"bytes={offset}-"
        self.source._guard()
        try:
            got = self.source.s3.get_object(Bucket=self.source.bucket.name, **kw)
        except bx.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                self.validator = None  # bind to whatever is there now; the digests judge it
                raise Restart("the object was replaced while it was read") from None
            if (code == "InvalidRange" or status == 416) and self.size is not None and offset >= self.size:
                return None
            raise describe_error(e, self.label, self.source.bucket.name) from None
        except (bx.NoCredentialsError, bx.EndpointConnectionError) as e:
            raise describe_error(e, self.label, self.source.bucket.name) from None
        length = got.get("ContentLength")
        return Opened(_Body(got["Body"]), length if isinstance(length, int) else None)


class _Body:
    """boto3's streaming body, read a buffer at a time."""

    def __init__(self, body):
        self.body = body

    def read1(self, n: int) -> bytes:
        return self.body.read(n)

    def close(self) -> None:
        self.body.close()


__all__ = ["S3Source"]
