"""Benchmarks: every figure a speed ratio against a reference measured in the same run.

    python bench/bench.py [--rounds 3] [--shards 8] [--shard-mb 128] [--big-mb 1024]
                          [--only pull,one,verify,fingerprint,check,structure,gguf] [--device cpu]

Ratio = reference seconds / weightsafe seconds (above 1: weightsafe is faster). Each round runs
every reference next to what it is compared with; the table shows the median of the rounds.
All traffic goes to the local hub replica on 127.0.0.1 (the same server for every client).

- pull: `weightsafe pull` (md5 + sha256 checked, xxh3 recorded, fsync'd) vs curl xN to disk
  then `sync`, and vs huggingface_hub.snapshot_download (then `sync`); peak RSS of the pull.
- one: one big file: pull vs max(curl + sync, openssl md5 of the file).
- verify: `verify --full` cold vs `openssl dgst -md5` and `-sha256` run as parallel jobs, cold.
- fingerprint: plain `verify` (xxh3-128) cold vs `cat > /dev/null` cold.
- check: `check --device D` (wall, and its load pass) vs a script that loads the same file with
  safetensors.torch.load_file / torch.load and reads every tensor (`clone`: what a server's
  load_state_dict costs), both cold. load_file alone returns lazy mmap views (reads nothing).
- gguf: `check --device D` of a GGUF file of --big-mb (half F16, half Q8_0 tensors, written by
  gguf.GGUFWriter) vs a script that opens it with gguf.GGUFReader and reads every tensor's data
  (a numpy sum of its bytes), both cold.
Cold = the files' pages dropped first (posix_fadvise DONTNEED after fsync; no global cache drop,
so other work on the machine keeps its cache).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
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

from tests import replicas  # noqa: E402
from tests.hub_server import HubReplica, HubState  # noqa: E402

WS = [sys.executable, "-m", "weightsafe"]


RSS_PROBE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(rc)")


def run(cmd, env, cwd=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command. A small probe process starts it: the
    child of this process would report this process's RSS (the served files) if forked from it."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, "-c", RSS_PROBE, rss.name, *cmd], env=env, cwd=cwd,
                             stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t
        if rc:
            raise SystemExit(f"{cmd[:4]}... exited {rc}")
        return seconds, int(rss.read() or 0) * 1024


def run_json(cmd, env) -> tuple[float, dict]:
    """Wall seconds of one ``--json`` command, and its report (whose own timings leave out the
    interpreter's start-up and imports, ~0.1 s here: a large share of a 0.3 s reference)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t, json.loads(out)


def sh(script: str, env, cwd=None) -> float:
    return run(["bash", "-c", script], env, cwd)[0]


def drop_cache(paths) -> None:
    """Make reads of ``paths`` cold: write back, then drop their pages (only theirs)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def synthetic_repo(shards: int, shard_mb: int) -> dict[str, bytes]:
    """Random shards (incompressible, so no layer can shortcut them) plus a config."""
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


class Results:
    """Per-figure samples over the rounds; the table shows medians."""

    def __init__(self):
        self.samples: dict[str, list[float]] = {}
        self.meta: dict[str, tuple] = {}

    def add(self, what: str, seconds: float, ref: str | None = None, nbytes: int | None = None, unit="s"):
        self.samples.setdefault(what, []).append(seconds)
        self.meta[what] = (ref, nbytes, unit)

    def table(self) -> str:
        lines = ["| what | median | throughput | speed vs reference |", "|---|---|---|---|"]
        for what, xs in self.samples.items():
            ref, nbytes, unit = self.meta[what]
            med = statistics.median(xs)
            if unit == "MB":
                lines.append(f"| {what} | {med:.0f} MB | | |")
                continue
            rate = f"{nbytes / med / 1e6:.0f} MB/s" if nbytes else ""
            ratio = ""
            if ref:
                ratios = sorted(r / s for r, s in zip(self.samples[ref], xs))
                ratio = f"**{statistics.median(ratios):.2f}x** {ref.split(' (')[0]} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"
            lines.append(f"| {what} | {med:.3f} s | {rate} | {ratio} |")
        return "\n".join(lines)


@contextlib.contextmanager
def serve(files: dict[str, bytes], repo: str, commit: str, work: Path, name: str, cdn: str = "nginx"):
    """The hub replica (API, resolve, redirects) with its CDN: by default a real nginx serving the
    blobs with sendfile, as a production CDN does, so that the server's CPU is not inside every
    figure (the Python CDN burns ~1.9 CPU-s a GiB of the 2 cores the clients share)."""
    state = HubState()
    state.add_repo(repo, commit, files)
    state.fault("throttle", host="cdn", times=None, chunk=1 << 20)  # no throttle: 1 MiB writes, less server CPU
    (work / "m").mkdir(exist_ok=True)
    (work / "m" / f"{name}.toml").write_text(manifest_for(name, repo, commit, files))
    with contextlib.ExitStack() as stack:
        cdn_url = None
        if cdn == "nginx":
            from tests import nginx

            if not nginx.NGINX:
                raise SystemExit("nginx is not installed (apt-get install nginx-light), or pass --cdn python")
            blobs = work / "cdn" / "repos"
            blobs.mkdir(parents=True, exist_ok=True)
            for sha, data in state.blobs.items():
                (blobs / sha).write_bytes(data)
            os.sync()  # no writeback of the served copies left to compete with the clients' writes
            cdn_url = stack.enter_context(nginx.nginx(work / "cdn", work / "nginx")).url()
        yield stack.enter_context(HubReplica(state, cdn_url=cdn_url))


def env_for(hub, work: Path) -> dict:
    return {**os.environ, "HF_ENDPOINT": hub.url, "WEIGHTSAFE_MANIFEST_PATH": str(work / "m"),
            "HF_HOME": str(work / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_ENABLE_HF_TRANSFER": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@dataclasses.dataclass(frozen=True)
class Served:
    """A model ``bench/NAME`` served to every client of one bench, and where they work."""

    hub: HubReplica
    env: dict
    work: Path
    repo: str
    commit: str

    def url(self, path: str) -> str:
        return f"{self.hub.url}/{self.repo}/resolve/{self.commit}/{path}"


@contextlib.contextmanager
def served(args, name: str, files: dict[str, bytes]):
    """Serve ``files`` as the manifest NAME (see ``serve``) from a fresh work directory, removed after."""
    repo, commit = f"bench/{name}", name[0] * 40
    work = Path(tempfile.mkdtemp(prefix="ws-bench-", dir=args.tmp))
    try:
        with serve(files, repo, commit, work, name, args.cdn) as hub:
            env = {**env_for(hub, work), "WEIGHTSAFE_CACHE": str(work / "cache")}
            yield Served(hub, env, work, repo, commit)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_pull(args, res: Results, rounds: int):
    files = synthetic_repo(args.shards, args.shard_mb)
    total = sum(len(d) for d in files.values())
    with served(args, "shards", files) as s:
        urls = " ".join(s.url(p) for p in files)
        n = args.curl_jobs
        curl_name = f"curl x{n} + sync ({total >> 20} MiB, {len(files)} files)"
        for r in range(rounds):
            d = s.work / f"r{r}"
            (d / "curl").mkdir(parents=True)
            res.add(curl_name, sh(f"printf '%s\\n' {urls} | xargs -P {n} -n 1 curl -sfLO && sync", s.env, d / "curl"), nbytes=total)
            secs, rss = run(WS + ["pull", "shards", "-q", "--cache-dir", str(d / "cache")], s.env)
            res.add("weightsafe pull (md5+sha256 checked, xxh3 recorded, fsync'd)", secs, curl_name, total)
            res.add("  peak RSS of weightsafe pull", rss / 1e6, unit="MB")
            hf = sh(f"{sys.executable} -c \"import sys; from huggingface_hub import snapshot_download; "
                    f"snapshot_download('{s.repo}', revision='{s.commit}', cache_dir=sys.argv[1], max_workers={n})\" "
                    f"{d / 'hf'} && sync", s.env)
            res.add(f"huggingface_hub.snapshot_download ({n} workers) + sync", hf, curl_name, total)
            shutil.rmtree(d, ignore_errors=True)


def bench_one(args, res: Results, rounds: int):
    size = args.big_mb << 20
    with served(args, "one", {"model.safetensors": os.urandom(size)}) as s:
        ref_name = f"max(curl + sync, openssl md5) ({size >> 20} MiB, 1 file)"
        for r in range(rounds):
            d = s.work / f"r{r}"
            d.mkdir()
            curl = sh(f"curl -sfLO {s.url('model.safetensors')} && sync", s.env, d)
            md5 = sh("openssl dgst -md5 model.safetensors >/dev/null", s.env, d)
            res.add("  curl + sync", curl, nbytes=size)
            res.add("  openssl md5 (warm)", md5, nbytes=size)
            res.add(ref_name, max(curl, md5), nbytes=size)
            secs, _ = run(WS + ["pull", "one", "-q", "--cache-dir", str(d / "cache")], s.env)
            res.add("weightsafe pull of one file (md5+sha256+xxh3)", secs, ref_name, size)
            shutil.rmtree(d, ignore_errors=True)


def bench_verify(args, res: Results, rounds: int, which: str):
    """verify --full and the fingerprint verify, over a pulled model, cold."""
    files = synthetic_repo(args.shards, args.shard_mb)
    total = sum(len(d) for d in files.values())
    with served(args, "verify", files) as s:
        env = s.env
        run(WS + ["pull", "verify", "-q"], env)
        paths = [str(p) for p in (s.work / "cache").rglob("*.safetensors")]
        quoted = " ".join(f"'{p}'" for p in paths)
        for _ in range(rounds):
            if "verify" in which:
                name = f"openssl md5 & openssl sha256 as parallel jobs, cold ({total >> 20} MiB)"
                drop_cache(paths)
                res.add(name, sh(f"openssl dgst -md5 {quoted} >/dev/null & openssl dgst -sha256 {quoted} >/dev/null & wait", env), nbytes=total)
                drop_cache(paths)
                secs, report = run_json(WS + ["verify", "verify", "--full", "--json"], env)
                res.add("weightsafe verify --full, cold", secs, name, total)
                res.add("  of which verify's own pass (--full, no start-up)", report["seconds"], name, total)
            if "fingerprint" in which:
                name = f"cat > /dev/null, cold ({total >> 20} MiB)"
                drop_cache(paths)
                res.add(name, sh(f"cat {quoted} > /dev/null", env), nbytes=total)
                drop_cache(paths)
                secs, report = run_json(WS + ["verify", "verify", "--json"], env)
                res.add("weightsafe verify (xxh3-128 fingerprint), cold", secs, name, total)
                res.add("  of which verify's own pass (fingerprint, no start-up)", report["seconds"], name, total)


LOADER = """
import sys, time, torch
from safetensors.torch import load_file
path = sys.argv[1]
state = load_file(path) if path.endswith(".safetensors") else torch.load(path, weights_only=True, mmap=False)
for t in state.values():
    t.clone() if path.endswith(".safetensors") else None  # torch.load without mmap already read every byte
"""


def bench_check(args, res: Results, rounds: int):
    import torch
    from safetensors.torch import save_file

    work = Path(tempfile.mkdtemp(prefix="ws-bench-check-", dir=args.tmp))
    env = dict(os.environ)
    try:
        per = (args.big_mb << 20) // 2 // 32  # bf16 elements per tensor, 32 tensors
        tensors = {f"layers.{i}.weight": torch.randn(per // 4096, 4096).to(torch.bfloat16) for i in range(32)}
        size = sum(t.numel() * 2 for t in tensors.values())
        (work / "st").mkdir()
        (work / "bin").mkdir()
        save_file(tensors, str(work / "st" / "model.safetensors"))
        torch.save(tensors, work / "bin" / "pytorch_model.bin")
        del tensors
        for _ in range(rounds):
            for kind, file, loader in (("st", "model.safetensors", "safetensors.torch.load_file + clone"),
                                       ("bin", "pytorch_model.bin", "torch.load (mmap=False)")):
                path = work / kind / file
                name = f"{loader}, cold, {size >> 20} MiB ({kind})"
                drop_cache([path])
                res.add(name, sh(f"{sys.executable} -c '{LOADER}' {path}", env), nbytes=size)
                drop_cache([path])
                secs, report = run_json(WS + ["check", "--dir", str(work / kind), "--device", args.device, "--json"], env)
                res.add(f"weightsafe check --device {args.device} ({kind}), wall", secs, name, size)
                res.add(f"  of which the load pass ({kind})", report["load"]["seconds"], nbytes=size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


GGUF_READER = """
import sys, numpy as np
from gguf import GGUFReader
total = 0
for t in GGUFReader(sys.argv[1]).tensors:
    total += int(np.asarray(t.data).reshape(-1).view(np.uint8).sum())
"""


def bench_gguf(args, res: Results, rounds: int):
    import numpy as np
    import gguf

    work = Path(tempfile.mkdtemp(prefix="ws-bench-gguf-", dir=args.tmp))
    env = dict(os.environ)
    try:
        path = work / "model" / "model-F16-Q8_0.gguf"
        path.parent.mkdir()
        per = (args.big_mb << 20) // 32  # bytes per tensor, 32 tensors
        rng = np.random.default_rng(0)
        w = gguf.GGUFWriter(str(path), "llama")
        for i in range(32):
            if i % 2:
                rows = per // 34 // 128  # Q8_0: 34 bytes per 32 values; rows of 4096 values
                blocks = rng.integers(0, 256, size=(rows, 128, 34), dtype=np.uint8)
                blocks[:, :, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
                w.add_tensor(f"blk.{i}.ffn_up.weight", blocks.reshape(rows, 128 * 34), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(f"blk.{i}.ffn_down.weight",
                             rng.standard_normal((per // 2 // 4096, 4096), dtype=np.float32).astype(np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        size = path.stat().st_size
        for _ in range(rounds):
            name = f"gguf.GGUFReader, every tensor read, cold, {size >> 20} MiB"
            drop_cache([path])
            res.add(name, sh(f"{sys.executable} -c '{GGUF_READER}' {path}", env), nbytes=size)
            drop_cache([path])
            secs, report = run_json(WS + ["check", "--dir", str(path.parent), "--device", args.device, "--json"], env)
            res.add(f"weightsafe check --device {args.device} (gguf), wall", secs, name, size)
            res.add("  of which the load pass (gguf)", report["load"]["seconds"], nbytes=size)
            res.add("  of which the structure pass + GGUFReader differential (gguf)", report["structure_seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_structure(args, res: Results):
    work = Path(tempfile.mkdtemp(prefix="ws-bench-structure-", dir=args.tmp))
    try:
        for name, r in replicas.build_all().items():
            d = work / name
            for path, data in r.files.items():
                (d / path).parent.mkdir(parents=True, exist_ok=True)
                (d / path).write_bytes(data)
            out = subprocess.run(WS + ["check", "--dir", str(d), "--structure-only", "--json"],
                                 capture_output=True, text=True, check=True).stdout
            res.add(f"check --structure-only {name}", json.loads(out)["structure_seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_bytecode() -> None:
    """Time weightsafe as installed: pip writes bytecode at install, but an editable install run
    with PYTHONDONTWRITEBYTECODE=1 (as on this project's machines) would recompile every module
    in every timed process (~0.1 s each)."""
    import compileall

    import weightsafe

    compileall.compile_dir(str(Path(weightsafe.__file__).parent), quiet=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=int, default=128)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--curl-jobs", type=int, default=4)
    ap.add_argument("--only", default="pull,one,verify,fingerprint,check")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cdn", choices=("nginx", "python"), default="nginx",
                    help="what serves the blobs: real nginx with sendfile (default), or the Python replica")
    ap.add_argument("--tmp", default=None, help="where to put the files (a disk, not tmpfs)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    res = Results()
    start = time.monotonic()
    compile_bytecode()
    if "pull" in only:
        bench_pull(args, res, args.rounds)
    if "one" in only:
        bench_one(args, res, args.rounds)
    if only & {"verify", "fingerprint"}:
        bench_verify(args, res, args.rounds, only)
    if "check" in only:
        bench_check(args, res, args.rounds)
    if "structure" in only:
        bench_structure(args, res)
    if "gguf" in only:
        bench_gguf(args, res, args.rounds)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average at the end {os.getloadavg()[0]:.2f}, {args.rounds} rounds, {time.monotonic() - start:.0f} s\n")
    print(res.table())


if __name__ == "__main__":
    main()
