"""Object storage as a mirror, against a real S3 server (SeaweedFS) with auth on: export a
verified model to a bucket, pull it back with the hub stopped, resume with ranged GETs, and
refuse what does not match, each failure one line and the documented exit code."""

from __future__ import annotations

import json

import pytest

import weightsafe
from tests.conftest import model_dir, run_ws
from tests.seaweed import seaweedfs

pytest.importorskip("boto3", reason="boto3 is the S3 client (pip install 'weightsafe[s3]')")

REPO_MODEL = "ibm-granite/granite-3.0-2b-instruct"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_env(env, s3, monkeypatch):
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    return {**env, **s3.env()}


@pytest.fixture
def bucket(s3, s3_env, request):
    """A fresh prefix in the test bucket per test."""
    return f"s3://{s3.bucket}/{request.node.name[:40]}"


def _objects(s3, prefix: str) -> dict[str, bytes]:
    import boto3

    c = boto3.client("s3")
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
    return out


def test_export_to_a_bucket_then_pull_from_it_with_the_hub_stopped(ws, hub, s3, s3_env, bucket, seeds, tmp_path):
    r = seeds["granite-3.0-2b-instruct"]
    assert ws("pull", REPO_MODEL).code == 0
    res = ws("mirror", "export", REPO_MODEL, bucket, "--json")
    assert res.code == 0, res
    assert {f["method"] for f in json.loads(res.out)["files"]} == {"upload"}
    prefix = bucket.split("/", 3)[3]
    stored = _objects(s3, prefix)
    for path, data in r.files.items():
        assert stored[f"{prefix}/{r.repo}/resolve/{r.commit}/{path}"] == data
    assert f"{prefix}/{r.repo}/resolve/main/.weightsafe/manifest.toml" in stored

    again = json.loads(ws("mirror", "export", REPO_MODEL, bucket, "--json").out)
    assert again["changed"] == 0  # size and recorded checksum match: nothing uploaded

    hub.stop()
    node = tmp_path / "node"
    res = run_ws("pull", REPO_MODEL, "--endpoint", bucket, "--cache-dir", str(node), "--json", env=s3_env)
    assert res.code == 0, res
    assert weightsafe.verify(REPO_MODEL, cache_dir=node, full=True).ok
    # and through HF_ENDPOINT, as huggingface_hub users configure a mirror
    node2 = tmp_path / "node2"
    res = run_ws("pull", f"{REPO_MODEL}@{r.commit}", "--cache-dir", str(node2), env=s3_env,
                 extra_env={"HF_ENDPOINT": bucket})
    assert res.code == 0, res


@pytest.fixture
def in_bucket(ws, hub, s3, bucket, seeds):
    """The codefuse replica exported to the bucket; the hub stopped."""
    assert ws("pull", "codefuse-34b").code == 0
    assert ws("mirror", "export", "codefuse-34b", bucket).code == 0
    hub.stop()
    return bucket


def _put(s3, bucket_url: str, relpath: str, data: bytes) -> None:
    import boto3

    prefix = bucket_url.split("/", 3)[3]
    boto3.client("s3").put_object(Bucket=s3.bucket, Key=f"{prefix}/{relpath}", Body=data)


def test_a_flipped_byte_in_a_bucket_object_is_refused(ws, s3, in_bucket, seeds, tmp_path):
    r = seeds["codefuse-34b"]
    path = "pytorch_model-00003-of-00007.bin"
    data = bytearray(r.files[path])
    data[1234] ^= 0x01
    _put(s3, in_bucket, f"{r.repo}/resolve/{r.commit}/{path}", bytes(data))
    node = tmp_path / "node"
    res = ws("pull", "codefuse-34b", "--endpoint", in_bucket, "--cache-dir", str(node))
    assert res.code == 1, res
    assert f"{path}: md5 from card differs" in res.err
    assert not (model_dir(node, r) / path).exists()
    assert not list((node / "partial").rglob("*.part"))  # the bad bytes were discarded too


def test_a_pull_from_a_bucket_resumes_with_a_ranged_get(ws, s3, in_bucket, seeds, tmp_path):
    import boto3

    from weightsafe.sources.resume import PartFile, PartState

    r = seeds["codefuse-34b"]
    path = "pytorch_model-00001-of-00007.bin"
    prefix = in_bucket.split("/", 3)[3]
    etag = boto3.client("s3").head_object(Bucket=s3.bucket, Key=f"{prefix}/{r.repo}/resolve/{r.commit}/{path}")["ETag"]
    node = tmp_path / "node"
    part = PartFile(node / "partial" / "codefuse-34b" / r.commit / (path + ".part"))
    part.path.parent.mkdir(parents=True)
    part.path.write_bytes(r.files[path][:40_000])
    part.save_state(PartState(etag, len(r.files[path]), etag))
    res = ws("pull", "codefuse-34b", "--endpoint", in_bucket, "--cache-dir", str(node), "--include", path, "--json")
    assert res.code == 0, res
    outcome = json.loads(res.out)["files"][0]
    assert outcome["resumed_from"] == 40_000 and outcome["fetched"] == len(r.files[path]) - 40_000


def test_wrong_credentials_missing_bucket_and_missing_key_are_one_line_exit_3(ws, s3, in_bucket, s3_env, seeds,
                                                                             tmp_path):
    node = str(tmp_path / "node")
    res = run_ws("pull", "codefuse-34b", "--endpoint", in_bucket, "--cache-dir", node, env=s3_env,
                 extra_env={"AWS_SECRET_ACCESS_KEY": "not-the-secret", "WEIGHTSAFE_RETRIES": "1"})
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
    assert "credentials" in res.err and "AWS_SECRET_ACCESS_KEY" in res.err

    res = run_ws("pull", "codefuse-34b", "--endpoint", "s3://no-such-bucket/x", "--cache-dir", node, env=s3_env)
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
    assert "bucket 'no-such-bucket' does not exist" in res.err

    r = seeds["codefuse-34b"]
    import boto3

    prefix = in_bucket.split("/", 3)[3]
    boto3.client("s3").delete_object(Bucket=s3.bucket, Key=f"{prefix}/{r.repo}/resolve/{r.commit}/config.json")
    res = run_ws("pull", "codefuse-34b", "--endpoint", in_bucket, "--cache-dir", node, env=s3_env)
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
    assert "config.json: not found in the bucket" in res.err

    res = run_ws("pull", "codefuse-34b", "--endpoint", "s3://", "--cache-dir", node, env=s3_env)
    assert res.code == 2 and "s3://bucket[/prefix]" in res.err


def test_a_cancelled_pull_from_a_bucket_keeps_every_byte_it_wrote_hashed_and_resumes_there(s3, s3_env, bucket,
                                                                                          tmp_path):
    import hashlib
    import os
    import threading

    from weightsafe.sources import s3 as s3source
    from weightsafe.sources.resume import Cancelled, PartFile

    data = os.urandom(3 * 1024 * 1024 + 7)  # several pipeline buffers
    _put(s3, bucket, "big/resolve/main/w.bin", data)
    source = s3source.S3Source(bucket, backoff=0.0)
    etag = source.stat("big", "main", "w.bin").etag
    part = PartFile(tmp_path / "w.bin.part")
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        source.download("big", "main", "w.bin", part, ("sha256",), len(data), etag, progress=lambda n: cancel.set(),
                        cancel=cancel)
    kept = part.size()
    assert 0 < kept < len(data) and part.path.read_bytes() == data[:kept]
    result = source.download("big", "main", "w.bin", part, ("sha256", "md5"), len(data), etag)
    assert result.resumed_from == kept and result.fetched == len(data) - kept
    assert result.digests == {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
