"""Benchmarks, as ratios against references measured in the same run.

    python bench/bench.py [--shards 8] [--shard-mb 64] [--only pull,verify,check] [--device auto]

- pull: weightsafe pull vs curl (the same files, 4 at a time, following the CDN redirect) and
  vs huggingface_hub.snapshot_download, all against the local hub replica on 127.0.0.1.
- verify: `weightsafe verify --full` (md5 + sha256 + xxh3 in one pass per file, files in
  parallel) vs `md5sum` then `sha256sum` over the same files; plain `verify` (xxh3 fingerprint).
- second pull of a verified model (absolute time; it does no network I/O).
- check: the structure pass over each seed replica, and the load pass of a large synthetic
  safetensors file on the chosen device (--big-gb).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import replicas  # noqa: E402
from tests.hub_server import HubReplica, HubState  # noqa: E402

WS = [sys.executable, "-m", "weightsafe"]


def timed(cmd, env, **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def synthetic_repo(shards: int, shard_mb: int) -> dict[str, bytes]:
    files = {f"model-{i + 1:05d}-of-{shards:05d}.safetensors": os.urandom(shard_mb * 1024 * 1024)
             for i in range(shards)}
    files["config.json"] = b'{"architectures": ["Bench"]}\n'
    return files


def manifest_for(name: str, repo: str, commit: str, files: dict[str, bytes]) -> str:
    out = [f'schema = 1\nname = "{name}"\nrepo = "{repo}"\nrevision = "{commit}"\n',
           '[sources]\ncard = "bench"\nhub-lfs = "bench"\nhub-git = "bench"\n']
    for path, data in files.items():
        digests = [f'{{ alg = "git-sha1", hex = "{replicas.git_blob_sha1(data)}", source = "hub-git" }}']
        if replicas.is_lfs(path, data):
            digests = [f'{{ alg = "md5", hex = "{hashlib.md5(data).hexdigest()}", source = "card" }}',
                       f'{{ alg = "sha256", hex = "{hashlib.sha256(data).hexdigest()}", source = "hub-lfs" }}']
        out.append(f'[[files]]\npath = "{path}"\nsize = {len(data)}\ndigests = [{", ".join(digests)}]\n')
    return "\n".join(out)


def row(table, what, seconds, ref=None, nbytes=None):
    rate = f"{nbytes / seconds / 1e6:.0f} MB/s" if nbytes else ""
    ratio = f"{seconds / ref:.2f}x" if ref else ""
    table.append((what, f"{seconds:.3f} s", rate, ratio))


def bench_pull_verify(args, table):
    files = synthetic_repo(args.shards, args.shard_mb)
    total = sum(len(d) for d in files.values())
    repo, commit = "bench/synthetic", "b" * 40
    state = HubState()
    state.add_repo(repo, commit, files)
    work = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    try:
        (work / "m").mkdir()
        (work / "m" / "synthetic.toml").write_text(manifest_for("synthetic", repo, commit, files))
        with HubReplica(state) as hub:
            env = {**os.environ, "HF_ENDPOINT": hub.url, "WEIGHTSAFE_MANIFEST_PATH": str(work / "m"),
                   "WEIGHTSAFE_CACHE": str(work / "cache"), "HF_HOME": str(work / "hf"),
                   "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
            urls = " ".join(f"{hub.url}/{repo}/resolve/{commit}/{p}" for p in files)
            (work / "curl").mkdir()
            curl = timed(["bash", "-c", f"printf '%s\\n' {urls} | xargs -P 4 -n 1 curl -sfLO"], env,
                         cwd=work / "curl")
            hf = timed([sys.executable, "-c", "import sys; from huggingface_hub import snapshot_download; "
                        f"snapshot_download({repo!r}, revision={commit!r}, cache_dir=sys.argv[1], max_workers=4)",
                        str(work / "hfcache")], env)
            ws = timed(WS + ["pull", "synthetic", "-q", "-j", "4"], env)
            again = timed(WS + ["pull", "synthetic", "-q"], env)
            row(table, f"curl -L, 4 parallel ({total / 1e6:.0f} MB, {len(files)} files)", curl, nbytes=total)
            row(table, "huggingface_hub.snapshot_download (4 workers)", hf, curl, total)
            row(table, "weightsafe pull -j 4 (md5+sha256+xxh3 while downloading)", ws, curl, total)
            row(table, "weightsafe pull, second time (verified, no network)", again)
        paths = [str(work / "curl" / p) for p in files]
        ref = timed(["bash", "-c", 'md5sum "$@" >/dev/null && sha256sum "$@" >/dev/null', "_"] + paths, env)
        md5 = timed(["md5sum"] + paths, env)
        full = timed(WS + ["verify", "synthetic", "--full", "-q"], env)
        fast = timed(WS + ["verify", "synthetic", "-q"], env)
        row(table, "md5sum then sha256sum (reference)", ref, nbytes=total)
        row(table, "weightsafe verify --full (md5+sha256, parallel)", full, ref, total)
        row(table, "md5sum alone", md5, ref, total)
        row(table, "weightsafe verify (xxh3-128 fingerprint)", fast, md5, total)
        row(table, "curl, then md5sum and sha256sum (download + verify reference)", curl + ref, nbytes=total)
        row(table, "weightsafe pull (verified while downloading)", ws, curl + ref, total)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_check(args, table):
    work = Path(tempfile.mkdtemp(prefix="ws-bench-check-"))
    env = dict(os.environ)
    try:
        for name, r in replicas.build_all().items():
            d = work / name
            for path, data in r.files.items():
                (d / path).parent.mkdir(parents=True, exist_ok=True)
                (d / path).write_bytes(data)
            out = subprocess.run(WS + ["check", "--dir", str(d), "--structure-only", "--json"], env=env,
                                 capture_output=True, text=True, check=True).stdout
            row(table, f"check --structure-only {name}", json.loads(out)["structure_seconds"])
        if args.big_gb:
            import torch
            from safetensors.torch import save_file

            d = work / "big"
            d.mkdir()
            per = int(args.big_gb * 1e9 / 2 / 2)  # elements per bf16 tensor, two tensors
            save_file({"a": torch.randn(per // 4096, 4096).to(torch.bfloat16),
                       "b": torch.randn(per // 4096, 4096).to(torch.bfloat16)}, str(d / "model.safetensors"))
            out = subprocess.run(WS + ["check", "--dir", str(d), "--device", args.device, "--json"], env=env,
                                 capture_output=True, text=True, check=True).stdout
            load = json.loads(out)["load"]
            row(table, f"load pass {load['bytes'] / 1e9:.1f} GB on {load['device']}", load["seconds"],
                nbytes=load["bytes"])
            if load["peak_device_bytes"]:
                table.append(("  peak device memory", f"{load['peak_device_bytes'] / 1e9:.2f} GB", "", ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=int, default=64)
    ap.add_argument("--only", default="pull,check")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--big-gb", type=float, default=1.0)
    args = ap.parse_args()
    table: list[tuple] = []
    if "pull" in args.only or "verify" in args.only:
        bench_pull_verify(args, table)
    if "check" in args.only:
        bench_check(args, table)
    print("| what | time | throughput | ratio to the reference above |\n|---|---|---|---|")
    for r in table:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
