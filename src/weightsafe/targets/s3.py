"""An S3 prefix as a mirror target: ``mirror export ... s3://bucket/prefix`` uploads a verified model
in the hub's URL layout, skipping objects whose size and recorded fingerprint already match.
Objects go up in parallel (large ones as multipart uploads); the manifest goes last."""

from __future__ import annotations

from pathlib import Path

from .. import manifest as mf
from ..errors import NotFound
from ..layout import file_relpath, manifest_relpath
from ..records import FileRecord
from ..s3client import FINGERPRINT_META, MULTIPART_CHUNK, BucketClient, describe_error
from ..settings import Settings
from .base import PRESENT, Finished, Placement

UPLOAD = "upload"


class S3Target:
    """``s3://bucket/prefix/{repo}/resolve/{commit}/{path}``, each object carrying the xxh3-128 it
    was verified with (so a re-export skips it); on ``finish`` the manifest, also under the alias:
    a bucket has no symlinks, so an alias names a manifest copy whose files live under the commit."""

    def __init__(self, destination: str, manifest: mf.Manifest, commit: str, alias: str | None = None,
                 jobs: int | None = None, settings: Settings | None = None):
        s = settings or Settings.from_env()
        self.client = BucketClient(destination, read_timeout=s.read_timeout, retries=s.retries, backoff=s.backoff)
        from boto3.s3.transfer import TransferConfig  # after the client, which says how to install boto3

        self.bucket = self.client.bucket
        self.root = self.bucket.url
        self.manifest = manifest
        self.commit = commit
        self.alias = alias
        self.workers = max(1, jobs or 4)
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_CHUNK, multipart_chunksize=MULTIPART_CHUNK,
                                       max_concurrency=4, use_threads=True)

    def place(self, entry: mf.FileEntry, src: Path, record: FileRecord | None) -> Placement:
        b = self.bucket
        key = b.key(file_relpath(self.manifest.repo, self.commit, entry.path))
        url = f"s3://{b.name}/{key}"
        fingerprint = record.fingerprint if record else None
        size = src.stat().st_size
        try:
            h = self.client.call("head_object", url, Key=key)
        except NotFound:
            h = None
        if h and h.get("ContentLength") == size and fingerprint and \
                (h.get("Metadata") or {}).get(FINGERPRINT_META) == fingerprint:
            return Placement(entry.path, url, PRESENT)
        extra = {"Metadata": {FINGERPRINT_META: fingerprint}} if fingerprint else {}
        try:
            self.client.s3.upload_file(str(src), b.name, key, ExtraArgs=extra, Config=self.transfer)
        except Exception as e:
            raise describe_error(getattr(e, "last_exception", None) or e.__cause__ or e, f"upload {url}",
                                 b.name) from None
        return Placement(entry.path, url, UPLOAD)

    def finish(self) -> Finished:
        b, m, alias = self.bucket, self.manifest, self.alias
        text = mf.to_toml(m).encode()
        keys = [manifest_relpath(m.repo, self.commit)] + ([manifest_relpath(m.repo, alias)] if alias else [])
        for rel in keys:
            self.client.call("put_object", f"s3://{b.name}/{b.key(rel)}", Key=b.key(rel), Body=text,
                             ContentType="application/toml")
        aliases, notes = (), ()
        if alias:
            aliases = (f"{b.url}/{manifest_relpath(m.repo, alias)}",)
            notes = (f"a bucket has no symlinks: {alias} is an alias for the manifest only; its files "
                     f"are read from resolve/{self.commit[:12]}",)
        return Finished(b.url, f"{b.url}/{manifest_relpath(m.repo, self.commit)}", aliases, notes, endpoint=b.url)


__all__ = ["S3Target"]
