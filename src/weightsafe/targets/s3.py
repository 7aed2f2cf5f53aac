"""An S3 prefix as a mirror target: ``mirror export ... s3://bucket/prefix`` uploads a verified model
in the hub's URL layout, skipping objects whose size and recorded fingerprint already match."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .. import manifest as mf
from ..errors import NotFound
from ..layout import file_relpath, manifest_relpath
from ..settings import Settings
from ..s3client import FINGERPRINT_META, MULTIPART_CHUNK, BucketClient, describe_error
from .base import SKIPPED, ExportedFile, ExportReport


def export_to_bucket(v, destination: str, alias: str | None, jobs: int | None = None, settings=None):
    """Upload a verified model (``mirror.Verified``) to ``s3://bucket/prefix`` in the mirror
    layout. Objects whose size and recorded xxh3-128 already match are skipped; the rest go up
    in parallel, large ones as multipart uploads; the manifest goes last."""
    from boto3.s3.transfer import TransferConfig


    s = settings or Settings.from_env()
    client = BucketClient(destination, read_timeout=s.read_timeout, retries=s.retries, backoff=s.backoff)
    b = client.bucket
    m = v.manifest
    report = ExportReport(m.name, m.repo, v.commit, b.url, f"{b.url}/{manifest_relpath(m.repo, v.commit)}")
    transfer = TransferConfig(multipart_threshold=MULTIPART_CHUNK, multipart_chunksize=MULTIPART_CHUNK,
                              max_concurrency=4, use_threads=True)

    def one(f) -> ExportedFile:
        key = b.key(file_relpath(m.repo, v.commit, f.path))
        fingerprint = v.fingerprint(f.path)
        src = v.source(f.path)
        size = src.stat().st_size
        try:
            h = client.call("head_object", f"s3://{b.name}/{key}", Key=key)
        except NotFound:
            h = None
        if h and h.get("ContentLength") == size and fingerprint and \
                (h.get("Metadata") or {}).get(FINGERPRINT_META) == fingerprint:
            return ExportedFile(f.path, f"s3://{b.name}/{key}", SKIPPED)
        extra = {"Metadata": {FINGERPRINT_META: fingerprint}} if fingerprint else {}
        try:
            client.s3.upload_file(str(src), b.name, key, ExtraArgs=extra, Config=transfer)
        except Exception as e:
            raise describe_error(getattr(e, "last_exception", None) or e.__cause__ or e, f"upload s3://{b.name}/{key}",
                            b.name) from None
        return ExportedFile(f.path, f"s3://{b.name}/{key}", "upload")

    with ThreadPoolExecutor(max_workers=max(1, jobs or 4)) as pool:
        report.files = list(pool.map(one, m.files))
    text = mf.to_toml(m).encode()
    keys = [manifest_relpath(m.repo, v.commit)] + ([manifest_relpath(m.repo, alias)] if alias else [])
    for rel in keys:
        client.call("put_object", f"s3://{b.name}/{b.key(rel)}", Key=b.key(rel), Body=text,
                    ContentType="application/toml")
    if alias:
        report.aliases.append(f"{b.url}/{manifest_relpath(m.repo, alias)}")
        report.notes.append(f"a bucket has no symlinks: {alias} is an alias for the manifest only; its files "
                            f"are read from resolve/{v.commit[:12]}")
    return report


__all__ = ["export_to_bucket"]
