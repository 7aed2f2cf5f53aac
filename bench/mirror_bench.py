"""Mirror benchmarks, as ratios against references measured in the same run.

    python bench/mirror_bench.py [--shards 4] [--shard-mb 64] [--rounds 3]

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import WS, Results, compile_bytecode, manifest_for, run, sh, synthetic_repo  # noqa: E402
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
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    compile_bytecode()
    files = synthetic_repo(args.shards, args.shard_mb)
    total = sum(len(d) for d in files.values())
    repo, commit = "bench/synthetic", "b" * 40
    state = HubState()
    state.add_repo(repo, commit, files)
    work = Path(tempfile.mkdtemp(prefix="ws-mirror-bench-"))
    res = Results()
    size = f"{total >> 20} MiB, {len(files)} files"
    try:
        (work / "m").mkdir()
        (work / "m" / "synthetic.toml").write_text(manifest_for("synthetic", repo, commit, files))
        base = {**os.environ, "WEIGHTSAFE_MANIFEST_PATH": str(work / "m"), "HF_HOME": str(work / "hf"),
                "HF_HUB_DISABLE_TELEMETRY": "1"}
        origin = {**base, "WEIGHTSAFE_CACHE": str(work / "cache")}
        with HubReplica(state) as hub:
            run(WS + ["pull", "synthetic", "-q", "-j", "4"], {**origin, "HF_ENDPOINT": hub.url})
        for r in range(args.rounds):
            shutil.rmtree(work / "www", ignore_errors=True)
            res.add(f"mirror export to a directory ({size}, hard links)",
                    run(WS + ["mirror", "export", "synthetic", str(work / "www"), "-q"], origin)[0])
        curl_name = f"curl from nginx, 4 parallel, no check ({size})"
        with nginx(work / "www", work / "nginx") as server:
            urls = " ".join(f"{server.url()}/{repo}/resolve/{commit}/{p}" for p in files)
            for r in range(args.rounds):
                d = work / f"http{r}"
                (d / "curl").mkdir(parents=True)
                res.add(curl_name, sh(f"printf '%s\\n' {urls} | xargs -P 4 -n 1 curl -sfO && sync", base, d / "curl"),
                        nbytes=total)
                res.add("weightsafe pull from nginx -j 4 (md5+sha256+xxh3, fsync'd)",
                        run(WS + ["pull", "synthetic", "-q", "-j", "4", "--endpoint", server.url()],
                            {**base, "WEIGHTSAFE_CACHE": str(d / "node")})[0], curl_name, total)
                shutil.rmtree(d)
        up_name = f"boto3 upload_file, 4 parallel ({size})"
        down_name = f"boto3 download_file, 4 parallel, no check ({size})"
        with seaweedfs(work / "seaweed") as s3:
            env = {**base, **s3.env()}
            src = [str(work / "www" / repo / "resolve" / commit / p) for p in files]
            for r in range(args.rounds):
                res.add(up_name, run([sys.executable, "-c", BOTO_UP, s3.bucket, f"ref{r}"] + src, env)[0], nbytes=total)
                dest = f"s3://{s3.bucket}/ws{r}"
                res.add("weightsafe mirror export to s3:// -j 4", run(
                    WS + ["mirror", "export", "synthetic", dest, "-q", "-j", "4"], {**origin, **s3.env()})[0], up_name, total)
                res.add("weightsafe mirror export to s3:// again (all skipped)", run(
                    WS + ["mirror", "export", "synthetic", dest, "-q"], {**origin, **s3.env()})[0], up_name, total)
                d = work / f"s3-{r}"
                (d / "boto").mkdir(parents=True)
                res.add(down_name, sh(f"{sys.executable} -c '{BOTO_DOWN}' {s3.bucket} ref{r} {d / 'boto'} "
                                      + " ".join(files) + " && sync", env), nbytes=total)
                res.add("weightsafe pull from s3:// -j 4 (md5+sha256+xxh3, fsync'd)", run(
                    WS + ["pull", "synthetic", "-q", "-j", "4", "--endpoint", dest],
                    {**env, "WEIGHTSAFE_CACHE": str(d / "node")})[0], down_name, total)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {args.rounds} rounds\n")
    print(res.table())


if __name__ == "__main__":
    main()
