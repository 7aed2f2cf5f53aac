"""Object storage as a mirror: ``--endpoint s3://bucket/prefix`` (or ``HF_ENDPOINT``) reads a tree
``mirror export`` wrote, through the S3 API, and ``mirror export ... s3://bucket/prefix`` writes one.

boto3 (the optional extra ``weightsafe[s3]``) is the client: it implements the whole standard
credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, SSO, instance
and pod roles) and ``AWS_ENDPOINT_URL`` for S3-compatible stores (MinIO, SeaweedFS, Ceph RGW, R2),
signs every request, retries with jittered exponential backoff ("standard" mode), and its
transfer manager does parallel multipart uploads. Re-implementing SigV4 would be a liability.

Downloads go into the same ``.part`` + state files as HTTP ones and are judged the same way:
ranged GETs resume from the bytes on disk, bound to the object's ETag with If-Match (an object
replaced meanwhile starts over rather than mixing two versions), every byte goes through the
``MultiHasher`` and the caller compares every digest before anything reaches its final path.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from typing import Callable

from ..errors import DiskError, HubError, IntegrityError, NotFound
from ..fsutil import nofollow
from ..hashing import MultiHasher
from ..pipeline import BUFFERS, Pipeline, writing
from ..s3client import Bucket, BucketClient, _first_line
from ..s3client import describe_error as _describe
from .base import RemoteFile
from .resume import Cancelled, PartFile, PartState, TransferResult

class S3Client(BucketClient):
    """Stands in for ``HubClient`` when the endpoint is ``s3://``: the same ``head``, ``file_url``
    and ``list_files`` (which says there is no hub API, so the mirror's manifest is read)."""

    def __init__(self, endpoint: str, offline: bool = False, read_timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5, on_retry: Callable[[str], None] | None = None, max_pool: int = 32):
        super().__init__(endpoint, offline=offline, read_timeout=read_timeout, retries=retries, backoff=backoff,
                         on_retry=on_retry, max_pool=max_pool)
        self.endpoint = self.bucket.url
        self.token = None

    @classmethod
    def from_settings(cls, settings, on_retry: Callable[[str], None] | None = None) -> "S3Client":
        return cls(settings.endpoint, offline=settings.offline, read_timeout=settings.read_timeout,
                   retries=settings.retries, backoff=settings.backoff, on_retry=on_retry)

    # ---------------------------------------------------------------- the HubClient surface
    def relpath(self, repo: str, revision: str, path: str) -> str:
        return f"{repo}/resolve/{revision}/{path}"

    def file_url(self, repo: str, revision: str, path: str) -> str:
        return f"s3://{self.bucket.name}/{self.bucket.key(self.relpath(repo, revision, path))}"

    def key_of(self, url: str) -> str:
        return urllib.parse.urlsplit(url).path.lstrip("/")

    def head(self, repo: str, revision: str, path: str) -> RemoteFile:
        key = self.bucket.key(self.relpath(repo, revision, path))
        h = self.call("head_object", f"{repo}@{revision[:12]}: {path}", Key=key)
        return RemoteFile(path=path, size=h.get("ContentLength"), etag=h.get("ETag"), sha256=None,
                          git_sha1=None, commit=None)

    def list_files(self, repo: str, revision: str):
        raise HubError(f"{repo}@{revision}: {self.endpoint} is object storage, not a hub API")

    def read_small(self, repo: str, revision: str, relpath: str) -> bytes | None:
        """A small object (a manifest) of the mirror tree, or None when it is not there."""
        key = self.bucket.key(self.relpath(repo, revision, relpath))
        try:
            return self.call("get_object", f"{repo}@{revision}: {relpath}", Key=key)["Body"].read()
        except NotFound:
            return None


# ---------------------------------------------------------------- download (the S3 side of the Puller seam)

def download(client: S3Client, url: str, part: PartFile, algs: tuple[str, ...], size: int | None,
             expect: str | None, progress: Callable[[int], None] | None = None,
             max_attempts: int | None = None, backoff: float | None = None, label: str | None = None,
             cancel: threading.Event | None = None, buffers: int = BUFFERS,
             keep_cache: bool = False) -> TransferResult:
    """Fetch the object at ``url`` (from ``file_url``) into ``part`` with ranged GETs, as
    ``transfer.download`` does over HTTP, through the same pipeline (a thread per digest, the
    writer flushing and dropping pages behind itself). ``expect`` is the object's ETag at HEAD time."""
    from botocore import exceptions as bx

    key = client.key_of(url)
    label = label or key.rsplit("/", 1)[-1]
    hasher, _ = part.resume(expect, size, algs, progress)  # S3 resumes bind to the ETag itself (IfMatch)
    resumed_from, fetched, restarts, failures = hasher.count, 0, 0, 0
    max_attempts = max_attempts if max_attempts is not None else client.retries + 1
    backoff = backoff if backoff is not None else client.backoff
    while size is None or hasher.count < size:
        before = hasher.count
        kw = {"Key": key}
        if expect:
            kw["IfMatch"] = expect
        if hasher.count:
            kw["Range"] = f"bytes={hasher.count}-"
        try:
            body = _get(client, kw, label, hasher.count, size)
            if body is None:  # nothing left to send
                break
            with open(part.path, "ab" if hasher.count else "wb", buffering=0, opener=nofollow) as fh, \
                    writing(fh, hasher.count, hasher.sinks(), buffers, keep_cache) as pipe:
                _pump(body, pipe, hasher, progress, cancel, size, label)
            fetched += hasher.count - before
            if size is None:
                break
        except _Replaced:
            restarts += 1
            if restarts > max_attempts:
                raise HubError(f"{label}: the object kept changing while it was read") from None
            if progress:
                progress(-hasher.count)
            hasher = MultiHasher(algs, size)
            expect = None  # bind to whatever is there now; the digests judge it
            part.save_state(PartState(None, size, None))
        except (bx.BotoCoreError, ConnectionError, TimeoutError) as e:
            fetched += hasher.count - before
            failures = 0 if hasher.count > before else failures + 1
            if failures >= max_attempts:
                raise HubError(f"{label}: transfer failed {failures} times in a row at byte {hasher.count}: "
                               f"{_first_line(e)}") from None
            wait = random.uniform(0, min(backoff * 2 ** failures, 10))  # full jitter: no thundering herd
            client.tell_retry(f"{label}: {_first_line(e)} at byte {hasher.count}; resuming in {wait:.1f} s "
                              f"(attempt {failures + 1}/{max_attempts})")
            if cancel is not None and cancel.wait(wait):
                raise Cancelled(label)
            if cancel is None:
                time.sleep(wait)
        except OSError as e:
            raise DiskError(f"cannot write {part.path}: {e.strerror or e}") from None
    return TransferResult(hasher.hexdigests(), hasher.count, fetched, resumed_from, restarts)


def _pump(body, pipe: Pipeline, hasher: MultiHasher, progress, cancel: threading.Event | None,
          size: int | None, label: str) -> None:
    """Move an object's body into the pipeline's buffers until it ends; each buffer is handed on
    as soon as it is read, so what arrived before an error is written and hashed."""
    while not (cancel is not None and cancel.is_set()):
        slot, buf = pipe.acquire()
        chunk = b""
        try:
            chunk = body.read(len(buf))
            buf[:len(chunk)] = chunk
        finally:
            pipe.submit(slot, len(chunk))
        if not chunk:
            return
        hasher.advance(len(chunk))
        if progress:
            progress(len(chunk))
        if size is not None and hasher.count > size:
            raise IntegrityError(f"{label}: the object is larger than the {size} bytes expected")
    raise Cancelled(label)


class _Replaced(Exception):
    """The object's ETag is no longer the one the part was begun with."""


def _get(client: S3Client, kw: dict, label: str, offset: int, size: int | None):
    from botocore import exceptions as bx

    client._guard()
    try:
        return client.s3.get_object(Bucket=client.bucket.name, **kw)["Body"]
    except bx.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "PreconditionFailed" or status == 412:
            raise _Replaced() from None
        if (code == "InvalidRange" or status == 416) and size is not None and offset >= size:
            return None
        raise _describe(e, label, client.bucket.name) from None
    except (bx.NoCredentialsError, bx.EndpointConnectionError) as e:
        raise _describe(e, label, client.bucket.name) from None


__all__ = ["S3Client", "Bucket", "download"]
