"""Where bytes come from. Every source implements one protocol (``Source``, base.py): stat a file,
list a revision, download a file into a part through the one resume loop (resume.py). The kinds:
the hub over HTTP (hub.py, which also reads a static mirror's published manifest: mirror.py)
and an S3 bucket (s3.py). ``open_source`` is the only place an endpoint's kind is decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .base import Listing, Published, RemoteEntry, RemoteFile, Source

if TYPE_CHECKING:
    from ..settings import Settings


def open_source(settings: Settings, on_retry: Callable[[str], None] | None = None) -> Source:
    """The source for ``settings.endpoint``: ``s3://bucket/prefix`` is a bucket, any http(s) URL a
    hub (or a mirror shaped like one). requests and boto3 load here, only when a source is opened."""
    if settings.endpoint.startswith("s3://"):
        from .s3 import S3Source

        return S3Source.from_settings(settings, on_retry=on_retry)
    from .hub import HubSource

    return HubSource.from_settings(settings, on_retry=on_retry)


__all__ = ["Listing", "Published", "RemoteEntry", "RemoteFile", "Source", "open_source"]
