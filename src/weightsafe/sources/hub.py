"""The Hugging Face hub as a source, over HTTP: HEAD a resolve URL for a file's size, LFS sha256
and commit; list a revision through the model API; download with ranged GETs that follow the
redirect to the CDN (without the token). An endpoint that answers no listing API (a static mirror
behind nginx or a CDN) is read through the manifest it publishes instead (``StaticMirror``).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from typing import Callable

import requests
import urllib3

from .._version import __version__
from ..errors import HubError, HubUnreachable, IntegrityError
from ..pipeline import BUFFERS
from .base import Listing, Published, RemoteEntry, RemoteFile
from .http import HttpClient, describe_http_error, reason
from .mirror import StaticMirror
from .resume import Opened, PartFile, Restart, RetryPolicy, SpeedLimit, TransferResult, fetch

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
STREAM_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                 requests.exceptions.Timeout, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _strip_quotes(etag: str | None) -> str | None:
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


class HubSource(HttpClient):
    """A hub (or a hub-shaped mirror: olah, nginx serving an export) at one endpoint."""

    # ---------------------------------------------------------------- URLs
    def file_url(self, repo: str, revision: str, path: str) -> str:
        rev = urllib.parse.quote(revision, safe="")
        return f"{self.endpoint}/{repo}/resolve/{rev}/{urllib.parse.quote(path, safe='/')}"

    # ---------------------------------------------------------------- Source
    def stat(self, repo: str, revision: str, path: str) -> RemoteFile:
        """HEAD a resolve URL: size, ETag, LFS sha256 and commit, without following the CDN."""
        url = self.file_url(repo, revision, path)
        # identity: a compressed Content-Length would not be the file's size
        resp = self.request("HEAD", url, follow="same-host", headers={"Accept-Encoding": "identity"},
                            what=f"{repo}@{revision[:12]}: {path}")
        resp.close()
        if resp.status_code >= 400:
            raise describe_http_error(resp, f"{repo}@{revision}: {path}")
        h = resp.headers
        linked = _strip_quotes(h.get("X-Linked-Etag"))
        etag = _strip_quotes(h.get("ETag"))
        size_header = h.get("X-Linked-Size") or (h.get("Content-Length") if resp.status_code < 300 else None)
        try:
            size = int(size_header) if size_header is not None else None
        except ValueError:
            size = None
        sha256 = linked if linked and SHA256_RE.match(linked) else None
        if sha256 is None and not linked and etag and SHA256_RE.match(etag) and "X-Repo-Commit" in h:
            sha256 = etag  # a caching mirror (olah) serving an LFS file itself: its ETag is the sha256, as on the hub
        git_sha1 = etag if not linked and etag and SHA1_RE.match(etag) and "X-Repo-Commit" in h else None
        return RemoteFile(path=path, size=size, etag=h.get("X-Linked-Etag") or h.get("ETag"),
                          sha256=sha256, git_sha1=git_sha1, commit=h.get("X-Repo-Commit"))

    def listing(self, repo: str, revision: str) -> Listing | Published:
        """The model API's listing; where the endpoint answers none (any refusal but an
        unreachable host), the manifest a static mirror publishes there, if it has one."""
        try:
            return self.api_listing(repo, revision)
        except HubUnreachable:
            raise
        except HubError as e:
            published = StaticMirror(self).published(repo, revision, why=str(e))
            if published is None:
                raise
            return published

    def api_listing(self, repo: str, revision: str) -> Listing:
        """The commit a revision resolves to and every file in it, from the model API."""
        self._guard()
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        api = HfApi(endpoint=self.endpoint, token=self.token or False,
                    library_name="weightsafe", library_version=__version__)
        try:
            info = api.model_info(repo, revision=revision, files_metadata=True)
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            hint = {401: "the repo does not exist, or is private or gated: check the name, set HF_TOKEN",
                    403: "the token may not read this repo (gated: accept its terms on the hub)",
                    404: "no such revision"}.get(status, str(e).splitlines()[0])
            raise HubError(f"{repo}@{revision}: the hub refused the file listing (HTTP {status}): {hint}") from None
        except Exception as e:  # httpx transport errors and the like
            unreachable = any(k in type(e).__name__ for k in ("Connect", "Timeout", "Network"))
            raise (HubUnreachable if unreachable else HubError)(
                f"{repo}@{revision}: listing failed: {reason(e)}") from None
        entries = []
        for s in info.siblings or []:
            lfs = getattr(s, "lfs", None)
            sha = getattr(lfs, "sha256", None) if lfs else None
            blob = getattr(s, "blob_id", None)
            entries.append(RemoteEntry(s.rfilename, s.size, sha, None if sha else blob))
        return Listing(info.sha, tuple(entries))

    def read_small(self, repo: str, revision: str, path: str, limit: int | None = None) -> bytes | None:
        """A small file through its resolve URL, streamed so that no more than ``limit`` bytes are
        ever held; None when the endpoint has none there (HTTP >= 400)."""
        resp = self.request("GET", self.file_url(repo, revision, path), headers={"Accept-Encoding": "identity"},
                            stream=True, what=f"{repo}@{revision}: {path}")
        with resp:
            if resp.status_code >= 400:
                return None
            body = bytearray()
            for chunk in resp.iter_content(1 << 20):
                body += chunk
                if limit is not None and len(body) >= limit:
                    return bytes(body[:limit])
            return bytes(body)

    def download(self, repo: str, revision: str, path: str, part: PartFile, algs: tuple[str, ...],
                 size: int | None, expect: str | None, *, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None, buffers: int | None = None,
                 keep_cache: bool = False, policy: RetryPolicy | None = None) -> TransferResult:
        """Fetch one file into ``part`` with ranged GETs bound by If-Range to the validator the
        kept bytes came under; ``expect`` is the file version (its ETag at HEAD time)."""
        return fetch(_HttpRanges(self, self.file_url(repo, revision, path), size, path), part, algs, size, expect,
                     policy=policy or RetryPolicy(self.retries + 1, self.backoff),
                     speed=SpeedLimit(self.min_speed, self.min_speed_window), progress=progress, label=path,
                     cancel=cancel, buffers=buffers or BUFFERS, keep_cache=keep_cache, on_retry=self.on_retry)


class _HttpRanges:
    """One file behind a resolve URL, opened at an offset with Range and If-Range."""

    transient = STREAM_ERRORS

    def __init__(self, http: HttpClient, url: str, size: int | None, label: str):
        self.http, self.url, self.size, self.label = http, url, size, label
        self.validator: str | None = None

    def resumed(self, validator: str | None) -> None:
        self.validator = validator

    def reason(self, error: BaseException) -> str:
        return reason(error)

    def open(self, offset: int) -> Opened | None:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        resp = self.http.request("GET", self.url, headers=headers, stream=True, what=self.label)
        try:
            length = self._judge(resp, offset)
        except BaseException:
            resp.close()
            raise
        if length == 0:
            resp.close()
            return None
        return Opened(_Raw(resp), length)

    def _judge(self, resp: requests.Response, offset: int) -> int | None:
        """How many bytes this response promises from ``offset`` (0: nothing left, None: unknown)."""
        size = self.size
        if resp.status_code == 416 and size is not None and offset >= size:
            return 0
        if resp.status_code >= 400:
            raise describe_http_error(resp, self.label, self.http.endpoint)
        got = resp.headers.get("ETag")
        if resp.status_code == 206:
            m = CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset or (size is not None and m.group(3) not in (str(size), "*")):
                raise Restart(f"bad Content-Range {resp.headers.get('Content-Range')!r} for offset {offset}")
            if self.validator and got and _strip_quotes(got) != _strip_quotes(self.validator):
                was, self.validator = self.validator, got
                raise Restart(f"a range of another version (ETag {got}, resuming {was})")
            return int(m.group(2)) - offset + 1
        if offset:
            was, self.validator = self.validator, got
            raise Restart(f"the server ignored the Range request, or the file changed (ETag {was} -> {got})")
        announced = resp.headers.get("Content-Length")
        if size is not None and announced is not None and announced.isdigit() and int(announced) != size:
            raise IntegrityError(f"{self.label}: the server announced {announced} bytes, "
                                 f"expected {size}; refusing a different file")
        self.validator = got
        return None


class _Raw:
    """A response's undecoded body, read as it arrives."""

    def __init__(self, resp: requests.Response):
        self.resp = resp

    def read1(self, n: int) -> bytes:
        return self.resp.raw.read1(n, decode_content=False)

    def close(self) -> None:
        self.resp.close()


__all__ = ["HubSource"]
