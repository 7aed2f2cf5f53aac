"""Mirror benchmarks, as ratios against references measured in the same run.

    python bench/mirror_bench.py [--shards 4] [--shard-mb 64]

- export to a directory (hard links) and to an S3 bucket (real SeaweedFS on loopback) vs a plain
  boto3 ``upload_file`` of the same files, 4 at a time; a re-export to the bucket (all skipped).
- pull from nginx serving the exported tree vs ``curl`` of the same URLs, 4 at a time.
- pull from the bucket vs a plain boto3 ``download_file`` of the same objects, 4 at a time.
Every weightsafe pull checks md5 + sha256 (+ xxh3) of every byte; the references check nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import WS, manifest_for, row, synthetic_repo, timed  # noqa: E402
from tests.hub_server import HubReplica, HubState  # noqa: E402
from tests.nginx import nginx  # noqa: E402
from tests.seaweed import seaweedfs  # noqa: E402

BOTO_UP = """import sys, boto3
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3"); bucket, prefix, files = sys.argv[1], sys.argv[2], sys.argv[3:]
with ThreadPoolExecutor(4) as p:
    list(p.map(lambda f: s3.upload_file(f, bucket, prefix + "/" + f.rsplit("/", 1)[1]), files))
"""
BOTO_DOWN = """import sys, boto3
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3"); bucket, prefix, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with ThreadPoolExecutor(4) as p:
    list(p.map(lambda n: s3.download_file(bucket, prefix + "/" + n, out + "/" + n), names))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--shard-mb", type=int, default=64)
    args = ap.parse_args()
    files = synthetic_repo(args.shards, args.shard_mb)
    total = sum(len(d) for d in files.values())
    repo, commit = "bench/synthetic", "b" * 40
    state = HubState()
    state.add_repo(repo, commit, files)
    work = Path(tempfile.mkdtemp(prefix="ws-mirror-bench-"))
    table: list[tuple[str, str, str, str]] = []
    try:
        (work / "m").mkdir()
        (work / "m" / "synthetic.toml").write_text(manifest_for("synthetic", repo, commit, files))
        base = {**os.environ, "WEIGHTSAFE_MANIFEST_PATH": str(work / "m"), "HF_HOME": str(work / "hf"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT / "src")}
        with HubReplica(state) as hub:
            timed(WS + ["pull", "synthetic", "-q", "-j", "4"],
                  {**base, "HF_ENDPOINT": hub.url, "WEIGHTSAFE_CACHE": str(work / "cache")})
        origin = {**base, "WEIGHTSAFE_CACHE": str(work / "cache")}
        export_dir = timed(WS + ["mirror", "export", "synthetic", str(work / "www"), "-q"], origin)
        row(table, f"mirror export to a directory ({total / 1e6:.0f} MB, {len(files)} files, hard links)",
            export_dir)
        with nginx(work / "www", work / "nginx") as server:
            urls = " ".join(f"{server.url()}/{repo}/resolve/{commit}/{p}" for p in files)
            (work / "curl").mkdir()
            curl = timed(["bash", "-c", f"printf '%s\\n' {urls} | xargs -P 4 -n 1 curl -sfO"], base,
                         cwd=work / "curl")
            ws = timed(WS + ["pull", "synthetic", "-q", "-j", "4", "--endpoint", server.url()],
                       {**base, "WEIGHTSAFE_CACHE": str(work / "node-http")})
            row(table, "curl from nginx, 4 parallel (reference, no check)", curl, nbytes=total)
            row(table, "weightsafe pull from nginx -j 4 (md5+sha256+xxh3)", ws, curl, total)
        with seaweedfs(work / "seaweed") as s3:
            env = {**base, **s3.env()}
            src = [str(work / "curl" / p) for p in files]
            up = timed([sys.executable, "-c", BOTO_UP, s3.bucket, "ref"] + src, env)
            ex = timed(WS + ["mirror", "export", "synthetic", f"s3://{s3.bucket}/ws", "-q", "-j", "4"],
                       {**origin, **s3.env()})
            again = timed(WS + ["mirror", "export", "synthetic", f"s3://{s3.bucket}/ws", "-q"], {**origin, **s3.env()})
            row(table, "boto3 upload_file, 4 parallel (reference)", up, nbytes=total)
            row(table, "weightsafe mirror export to s3:// -j 4", ex, up, total)
            row(table, "weightsafe mirror export to s3://, again (all skipped)", again, up)
            (work / "boto").mkdir()
            down = timed([sys.executable, "-c", BOTO_DOWN, s3.bucket, "ref", str(work / "boto")] + list(files), env)
            ws3 = timed(WS + ["pull", "synthetic", "-q", "-j", "4", "--endpoint", f"s3://{s3.bucket}/ws"],
                        {**env, "WEIGHTSAFE_CACHE": str(work / "node-s3")})
            row(table, "boto3 download_file, 4 parallel (reference, no check)", down, nbytes=total)
            row(table, "weightsafe pull from s3:// -j 4 (md5+sha256+xxh3)", ws3, down, total)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in table)
    for what, secs, rate, ratio in table:
        print(f"{what:<{width}}  {secs:>9}  {rate:>9}  {ratio:>6}")


if __name__ == "__main__":
    main()
