"""Verifying the Hugging Face cache: weightsafe vs `hf cache verify`, same snapshot, same run.

    python bench/hfcache.py [--shards 8] [--shard-mb 64] [--rounds 3]

A synthetic repo is served by the local hub replica, pulled into the HF cache with
`weightsafe pull ORG/REPO --hf-cache`, then checked three ways (median of --rounds, warm page cache):
`hf cache verify` (huggingface_hub's command: it asks the endpoint for the expected digests and
hashes one file at a time), `weightsafe verify --hf-cache --full` (offline, files in parallel), and
plain `weightsafe verify --hf-cache` (the recorded xxh3-128 fingerprints).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import synthetic_repo  # noqa: E402
from tests.hub_server import HubReplica, HubState  # noqa: E402

WS = [sys.executable, "-m", "weightsafe"]
HF = [str(Path(sys.executable).parent / "hf")]


def median_time(cmd: list[str], env: dict, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ws-bench-hf-"))
    state = HubState()
    repo, commit = "bench/hfcache", "b" * 40
    files = synthetic_repo(args.shards, args.shard_mb)
    state.add_repo(repo, commit, files)
    total = sum(len(d) for d in files.values())
    try:
        with HubReplica(state) as hub:
            env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf"),
                   "WEIGHTSAFE_CACHE": str(work / "cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
            subprocess.run([*WS, "pull", repo, "--hf-cache", "--quiet"], env=env, check=True)
            rows = [("hf cache verify (reference; online, serial)",
                     median_time([*HF, "cache", "verify", repo], env, args.rounds)),
                    ("weightsafe verify --hf-cache --full (offline, parallel)",
                     median_time([*WS, "verify", repo, "--hf-cache", "--full", "--quiet"],
                                 {**env, "HF_HUB_OFFLINE": "1"}, args.rounds)),
                    ("weightsafe verify --hf-cache (fingerprint)",
                     median_time([*WS, "verify", repo, "--hf-cache", "--quiet"], {**env, "HF_HUB_OFFLINE": "1"},
                                 args.rounds))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = rows[0][1]
    print(f"{args.shards} x {args.shard_mb} MiB ({total / 1e6:.0f} MB), {os.cpu_count()} cores, "
          f"median of {args.rounds}, warm page cache")
    print("| what | seconds | MB/s | speed vs reference |\n|---|---|---|---|")
    for what, t in rows:
        print(f"| {what} | {t:.3f} | {total / t / 1e6:.0f} | {ref / t:.2f}x |")


if __name__ == "__main__":
    main()
