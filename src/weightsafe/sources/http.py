"""HTTP to a hub or a mirror: one requests session bound to an endpoint and its token.

Redirects are followed by hand so the Authorization header goes only to the endpoint's own
origin: a 302 to the CDN (or anywhere else) is followed without it. Transient failures
(connection errors, 429 with Retry-After, 5xx) are retried by urllib3 with backoff.
"""

from __future__ import annotations

import urllib.parse
from typing import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .._version import __version__
from ..errors import HubError, HubUnreachable, NotFound, OfflineError, RateLimited
from ..settings import Settings, check_endpoint

MAX_REDIRECTS = 10


RetryHook = Callable[[str], None]


class _CappedRetry(Retry):
    """urllib3's Retry, but a server's Retry-After is honoured only up to a minute, and every
    retry is told to ``on_retry`` (a pipeline log shows "retry 2/5 in 1.0 s", not silence)."""

    MAX_RETRY_AFTER = 60.0
    on_retry: RetryHook | None = None

    def get_retry_after(self, response):
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.MAX_RETRY_AFTER)

    def new(self, **kw):
        fresh = super().new(**kw)
        fresh.on_retry = self.on_retry
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.on_retry:
            why = f"HTTP {response.status}" if response is not None and not error else reason(error or "")
            wait = (fresh.get_retry_after(response) if response is not None else None) or fresh.get_backoff_time()
            where = f"{_pool.host}:{_pool.port}{url or ''}" if _pool is not None else (url or "")
            budget = len(self.history) + self.total  # self.total is what is left, not what was allowed
            self.on_retry(f"{method} {where}: {why}; retry {len(fresh.history)}/{budget} in {wait:.1f} s")
        return fresh


def origin(url: str) -> tuple[str, str, int]:
    p = urllib.parse.urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return p.scheme, (p.hostname or "").lower(), port


def describe_http_error(resp: requests.Response, what: str, endpoint: str | None = None) -> HubError:
    """One line for an HTTP error; ``endpoint`` tells a refusal by the hub from one by its CDN."""
    code = resp.status_code
    message = resp.headers.get("X-Error-Message") or resp.reason or ""
    err = resp.headers.get("X-Error-Code", "")
    if code == 400 and origin(resp.url)[0] == "http" and _speaks_tls(resp.url):  # nginx's answer on its TLS port
        return HubError(f"{what}: HTTP 400: {TLS_ON_HTTP}")
    if code in (401, 403) and endpoint and origin(resp.url) != origin(endpoint):
        return HubError(f"{what}: the download host {origin(resp.url)[1]} refused the redirect (HTTP {code}); "
                        f"its signed URL may have expired: run the pull again")
    if code in (401, 403):
        hint = "the repo is gated, private or missing: set HF_TOKEN or run `hf auth login`"
        return HubError(f"{what}: HTTP {code} {err or message}; {hint}")
    if code == 404:
        return NotFound(f"{what}: not found on the hub (HTTP 404 {err})".rstrip())
    if code == 429:
        return RateLimited(f"{what}: rate limited by the hub (HTTP 429), retries exhausted")
    return HubError(f"{what}: HTTP {code} {message}".rstrip())


class HttpClient:
    """A requests session bound to one endpoint and token, with retries and safe redirects."""

    def __init__(self, endpoint: str, token: str | None = None, offline: bool = False,
                 connect_timeout: float = 10.0, read_timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5, on_retry: RetryHook | None = None, min_speed: float = 1024.0,
                 min_speed_window: float = 30.0):
        self.endpoint = check_endpoint(endpoint, object_storage=False)
        self.token = token
        self.offline = offline
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff = backoff
        self.on_retry = on_retry
        self.min_speed, self.min_speed_window = min_speed, min_speed_window  # see resume.SpeedLimit
        self.session = requests.Session()
        # read: a reset or a stall before the response headers is retried here; after them
        # (mid-body) the transfer resumes from its offset instead.
        retry = _CappedRetry(total=self.retries, connect=self.retries, read=self.retries, status=self.retries,
                             other=0,
                      backoff_factor=self.backoff, backoff_max=30, backoff_jitter=self.backoff,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                      respect_retry_after_header=True, raise_on_status=False, redirect=0)
        retry.on_retry = on_retry
        adapter = HTTPAdapter(max_retries=retry, pool_connections=32, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"weightsafe/{__version__}"
        self.session.trust_env = True

    @classmethod
    def from_settings(cls, settings: Settings, on_retry: RetryHook | None = None):
        return cls(settings.endpoint, token=settings.token, offline=settings.offline,
                   read_timeout=settings.read_timeout, retries=settings.retries, backoff=settings.backoff,
                   on_retry=on_retry, min_speed=settings.min_speed, min_speed_window=settings.min_speed_window)

    def _headers_for(self, url: str, extra: dict | None = None) -> dict:
        headers = dict(extra or {})
        if self.token and origin(url) == origin(self.endpoint):
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _guard(self) -> None:
        if self.offline:
            raise OfflineError("the network is needed but offline mode is on (HF_HUB_OFFLINE / --offline)")

    # ---------------------------------------------------------------- requests
    def request(self, method: str, url: str, follow: str = "all", headers: dict | None = None,
                stream: bool = False, what: str | None = None) -> requests.Response:
        """One request with manual redirects. ``follow``: 'all', or 'same-host' to stop at a
        redirect that leaves the endpoint's origin (that response is returned, as HEAD needs).
        ``what`` names the request in error messages (default: the URL)."""
        self._guard()
        what = what or url
        seen = set()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.request(method, url, headers=self._headers_for(url, headers),
                                            allow_redirects=False, stream=stream, timeout=self.timeout)
            except requests.exceptions.RetryError as e:
                raise HubError(f"{what}: gave up after {self.retries} retries ({reason(e)})") from None
            except requests.exceptions.SSLError as e:  # reached, but not trusted: no fallback
                raise HubError(f"{what}: {reason(e)} ({origin(url)[1]}:{origin(url)[2]})") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                why = reason(e)
                if origin(url)[0] == "http" and why != "connection refused" and _speaks_tls(url):
                    why = TLS_ON_HTTP
                raise HubUnreachable(f"{what}: {why} ({origin(url)[1]}:{origin(url)[2]})") from None
            except requests.exceptions.RequestException as e:
                raise HubError(f"{what}: {reason(e)} ({origin(url)[1]}:{origin(url)[2]})") from None
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp
            location = resp.headers.get("Location")
            if not location:
                return resp
            nxt = urllib.parse.urljoin(url, location)
            if follow == "same-host" and origin(nxt) != origin(url):
                return resp
            resp.close()
            if nxt in seen:
                raise HubError(f"{what}: redirect loop at {nxt}")
            seen.add(nxt)
            url = nxt
        raise HubError(f"{what}: more than {MAX_REDIRECTS} redirects")


TLS_ON_HTTP = "the endpoint is http:// but the server speaks HTTPS (use https://)"


def _speaks_tls(url: str) -> bool:
    """Whether the server behind a failed http:// URL completes a TLS handshake: the one check that
    tells "wrong scheme" from a server that really reset the connection. Goes only to that host."""
    import socket
    import ssl

    _, host, port = origin(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=2) as sock, ctx.wrap_socket(sock, server_hostname=host):
            return True
    except (OSError, ssl.SSLError):
        return False


KNOWN_REASONS = (("WRONG_VERSION_NUMBER", "the endpoint is https:// but the server speaks plain HTTP (use http://)"),
                 ("record layer failure", "the endpoint is https:// but the server speaks plain HTTP (use http://)"),
                 ("\\x15\\x03", TLS_ON_HTTP), ("plain HTTP request was sent to HTTPS port", TLS_ON_HTTP),
                 ("Connection refused", "connection refused"), ("Read timed out", "read timed out (stalled)"),
                 ("Connection reset", "connection reset"), ("Name or service not known", "unknown host"),
                 ("Temporary failure in name resolution", "DNS lookup failed"),
                 ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
                 ("IncompleteRead", "the connection closed before the body ended"),
                 ("Max retries exceeded", "too many failed attempts"))


def reason(e: BaseException) -> str:
    """A short, human reason for a requests/urllib3/httpx exception chain."""
    text = str(e)
    found = [short for marker, short in KNOWN_REASONS if marker in text]
    if found:
        return found[0]
    return text.splitlines()[0][:200] if text else type(e).__name__


__all__ = ["HttpClient", "describe_http_error", "origin", "reason"]
