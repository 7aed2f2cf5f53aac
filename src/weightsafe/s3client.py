"""A boto3 client bound to one bucket, with every failure mapped to a one-line, typed error: the
plumbing the S3 source and the S3 target share.

boto3 (the optional extra ``weightsafe[s3]``) is the client: it implements the whole standard
credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, SSO, instance
and pod roles) and ``AWS_ENDPOINT_URL`` for S3-compatible stores (MinIO, SeaweedFS, Ceph RGW, R2),
signs every request, retries with jittered exponential backoff ("standard" mode), and its
transfer manager does parallel multipart uploads. Re-implementing SigV4 would be a liability.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Callable

from .errors import HubError, HubUnreachable, NotFound, OfflineError, UsageError

MULTIPART_CHUNK = 8 * 1024 * 1024
FINGERPRINT_META = "xxh3-128"


def _boto3():
    try:
        import boto3
        import botocore
    except ImportError:
        raise UsageError("an s3:// endpoint needs boto3: pip install 'weightsafe[s3]'") from None
    return boto3, botocore


@dataclass(frozen=True)
class Bucket:
    """``s3://bucket/prefix``: where a mirror tree starts inside a bucket."""

    name: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "Bucket":
        p = urllib.parse.urlsplit(url)
        if p.scheme != "s3" or not p.netloc or p.query or p.fragment:
            raise UsageError(f"{url!r} is not s3://bucket[/prefix]")
        return cls(p.netloc, p.path.strip("/"))

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}".rstrip("/")

    def key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath


def describe_error(e: BaseException, what: str, bucket: str) -> HubError:
    """One line for any failure of an S3 call, saying what to fix."""
    _, botocore = _boto3()
    from botocore import exceptions as bx

    if isinstance(e, bx.NoCredentialsError):
        return HubError(f"{what}: no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                        f"or AWS_PROFILE")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return HubUnreachable(f"{what}: the S3 endpoint cannot be reached ({first_line(e)})")
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
            return HubError(f"{what}: the S3 server refused the credentials ({code}): check AWS_ACCESS_KEY_ID / "
                            f"AWS_SECRET_ACCESS_KEY / AWS_PROFILE")
        if code == "NoSuchBucket":
            return HubError(f"{what}: the bucket {bucket!r} does not exist (check the endpoint and AWS_ENDPOINT_URL)")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"{what}: not found in the bucket {bucket!r} (HTTP 404)")
        if status == 403 or code in ("AccessDenied", "403", "Forbidden"):
            return HubError(f"{what}: access denied (HTTP 403): wrong credentials, or they may not read "
                            f"s3://{bucket}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE")
        return HubError(f"{what}: S3 error {code or status}: {err.get('Message') or first_line(e)}")
    if isinstance(e, botocore.exceptions.BotoCoreError):
        return HubError(f"{what}: {first_line(e)}")
    return HubError(f"{what}: {type(e).__name__}: {first_line(e)}")


def first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0][:200] if text else type(e).__name__


class BucketClient:
    """A boto3 S3 client and the bucket (and prefix) it serves; ``call`` is the one way to use it."""

    def __init__(self, endpoint: str, offline: bool = False, read_timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5, on_retry: Callable[[str], None] | None = None, max_pool: int = 32):
        boto3, _ = _boto3()
        from botocore.config import Config

        self.bucket = Bucket.parse(endpoint)
        self.endpoint = self.bucket.url
        self.token = None
        self.offline = offline
        self.retries = retries
        self.backoff = backoff
        self.on_retry = on_retry
        session = boto3.session.Session()
        config = Config(retries={"mode": "standard", "max_attempts": retries + 1}, connect_timeout=10,
                        read_timeout=read_timeout, max_pool_connections=max_pool,
                        user_agent_extra="weightsafe")
        # the region matters only for signing; S3-compatible stores accept the default one
        region = session.region_name or "us-east-1"
        self.s3 = session.client("s3", region_name=region, config=config)

    @classmethod
    def from_settings(cls, settings, on_retry: Callable[[str], None] | None = None):
        return cls(settings.endpoint, offline=settings.offline, read_timeout=settings.read_timeout,
                   retries=settings.retries, backoff=settings.backoff, on_retry=on_retry)

    def _guard(self) -> None:
        if self.offline:
            raise OfflineError("the network is needed but offline mode is on (HF_HUB_OFFLINE / --offline)")

    def call(self, op: str, what: str, **kw):
        """One S3 API call; every failure becomes a one-line HubError (exit 3)."""
        self._guard()
        try:
            return getattr(self.s3, op)(Bucket=self.bucket.name, **kw)
        except Exception as e:
            err = describe_error(e, what, self.bucket.name)
            if isinstance(err, NotFound) and op == "head_object":
                self._bucket_exists(what)
            raise err from None

    def _bucket_exists(self, what: str) -> None:
        """A HEAD of a missing key and of a key in a missing bucket both say 404: tell them apart."""
        try:
            self.s3.head_bucket(Bucket=self.bucket.name)
        except Exception as e:
            if isinstance(describe_error(e, what, self.bucket.name), NotFound):
                raise HubError(f"{what}: the bucket {self.bucket.name!r} does not exist (check the endpoint "
                               f"and AWS_ENDPOINT_URL)") from None


__all__ = ["Bucket", "BucketClient", "FINGERPRINT_META", "MULTIPART_CHUNK", "describe_error", "first_line"]
