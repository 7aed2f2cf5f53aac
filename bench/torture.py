"""Torture run: crashes, concurrency, every injected fault, disk full and hostile input.

    python bench/torture.py [--kills 32] [--shards 6] [--shard-mb 50] [--seed 1]

Everything runs against the local hub replica (tests/hub_server.py) on 127.0.0.1, with real
`weightsafe` processes. Prints markdown tables; docs/RELIABILITY.md holds the latest figures.
Goals: every crash run ends verified with <= 1.10x the model's bytes fetched; 0 corrupt files at a
final cache path; 0 tracebacks; 0 Authorization headers at another host.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import manifest_for, synthetic_repo  # noqa: E402
from tests import replicas  # noqa: E402
from tests.hub_server import HubReplica, HubState  # noqa: E402
from tests.scenarios import FAULTS, HOSTILE_NAMES, MODEL, malformed_manifests  # noqa: E402

WS = [sys.executable, "-m", "weightsafe"]
TOKEN = "hf_torture_token"
STATS = {"tracebacks": 0, "processes": 0}


def ws(args, env, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(WS + args, env=env, capture_output=True, text=True, **kw)
    STATS["processes"] += 1
    STATS["tracebacks"] += "Traceback" in proc.stderr
    return proc


def corrupt_finals(cache: Path, files: dict[str, bytes]) -> int:
    """Files at a final cache path whose bytes are not the published ones."""
    bad = 0
    for p in (cache / "models").rglob("*") if (cache / "models").exists() else []:
        if p.is_file() and p.read_bytes() != files.get(p.name):
            bad += 1
    return bad


class Rig:
    def __init__(self, args):
        self.files = synthetic_repo(args.shards, args.shard_mb)
        self.size = sum(len(d) for d in self.files.values())
        self.state = HubState()
        self.state.tokens.add(TOKEN)
        self.state.add_repo("torture/model", "t" * 40, self.files, gated=True)
        for r in replicas.build_all().values():
            self.state.add_replica(r)
        self.replica = replicas.build_all()[MODEL]
        self.work = Path(tempfile.mkdtemp(prefix="ws-torture-"))
        (self.work / "m").mkdir()
        (self.work / "m" / "torture.toml").write_text(manifest_for("torture", "torture/model", "t" * 40, self.files))
        (self.work / "m" / f"{MODEL}.toml").write_text(replicas.replica_manifest(self.replica))
        self.hub = HubReplica(self.state).start()

    def env(self, cache: Path, **extra) -> dict:
        return {**os.environ, "HF_ENDPOINT": self.hub.url, "WEIGHTSAFE_MANIFEST_PATH": str(self.work / "m"),
                "WEIGHTSAFE_CACHE": str(cache), "HF_TOKEN": TOKEN, "HF_HOME": str(self.work / "hf"),
                "WEIGHTSAFE_BACKOFF": "0.1", "WEIGHTSAFE_READ_TIMEOUT": "2", **extra}

    def served(self) -> int:
        return self.state.bytes_served("cdn")

    def close(self):
        self.hub.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def kill_runs(rig: Rig, kills: int, rng: random.Random) -> list[tuple]:
    cache = rig.work / "baseline"
    t = time.perf_counter()
    assert ws(["pull", "torture", "-q"], rig.env(cache)).returncode == 0
    duration = time.perf_counter() - t
    shutil.rmtree(cache)
    verified, ratios, corrupt = 0, [], 0
    for i in range(kills):
        cache = rig.work / f"kill{i}"
        env = rig.env(cache)
        before = rig.served()
        proc = subprocess.Popen(WS + ["pull", "torture", "-q"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, 0.95 * duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        corrupt += corrupt_finals(cache, rig.files)
        done = ws(["pull", "torture", "-q"], env)
        check = ws(["verify", "torture", "--full", "-q"], env)
        verified += done.returncode == 0 and check.returncode == 0
        corrupt += corrupt_finals(cache, rig.files)
        ratios.append((rig.served() - before) / rig.size)
        shutil.rmtree(cache)
    # one pull killed again and again, resuming each time
    cache = rig.work / "chained"
    env = rig.env(cache)
    before = rig.served()
    for _ in range(kills):
        proc = subprocess.Popen(WS + ["pull", "torture", "-q"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, duration / 4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        corrupt += corrupt_finals(cache, rig.files)
    chained_ok = ws(["pull", "torture", "-q"], env).returncode == 0 and \
        ws(["verify", "torture", "--full", "-q"], env).returncode == 0
    chained = (rig.served() - before) / rig.size
    corrupt += corrupt_finals(cache, rig.files)
    return [
        (f"kill -9 at a random moment, then pull again ({kills} runs, {rig.size / 1e6:.0f} MB, "
         f"{len(rig.files)} files, uninterrupted pull {duration:.2f} s)",
         f"{verified}/{kills} verified", f"bytes fetched / model size: {sum(ratios) / len(ratios):.3f} in total "
                                         f"(worst single run {max(ratios):.3f})"),
        (f"one pull killed {kills} times in a row, then completed", "verified" if chained_ok else "FAILED",
         f"bytes fetched / model size: {chained:.3f}"),
        ("corrupt files seen at a final path (checked after every kill)", str(corrupt), ""),
    ]


def concurrent(rig: Rig, n: int = 4) -> list[tuple]:
    cache = rig.work / "concurrent"
    env = rig.env(cache)
    before = rig.served()
    procs = [subprocess.Popen(WS + ["pull", "torture", "-q", "-j", "2"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        codes.append(p.returncode)
        STATS["tracebacks"] += "Traceback" in err
    ok = ws(["verify", "torture", "--full", "-q"], env).returncode == 0
    return [(f"{n} processes pulling the same model at once", f"{codes.count(0)}/{n} succeeded, "
             f"{'verified' if ok else 'NOT verified'}", f"bytes fetched / model size: "
             f"{(rig.served() - before) / rig.size:.3f}")]


def faults(rig: Rig) -> list[tuple]:
    rows = []
    for s in FAULTS:
        rig.state.faults.clear()
        repo = rig.state.repos[rig.replica.repo]
        repo.gated = False
        s.setup(rig.state)
        cache = rig.work / "fault"
        env = rig.env(cache, **dict(s.env))
        if not s.token:
            env.pop("HF_TOKEN")
        proc = ws(["pull", MODEL, "-q"], env, timeout=300)
        corrupt = corrupt_finals(cache, rig.replica.files)
        line = proc.stderr.strip().splitlines()[-1][:110] if proc.stderr.strip() else "verified"
        verdict = "ok" if proc.returncode == s.exit_code and not corrupt else "UNEXPECTED"
        rows.append((s.name, f"exit {proc.returncode} (expected {s.exit_code}) {verdict}", line.replace("|", "/")))
        shutil.rmtree(cache, ignore_errors=True)
    rig.state.faults.clear()
    rig.state.repos[rig.replica.repo].gated = False
    return rows


def disk_full(rig: Rig) -> list[tuple]:
    rows = []
    mnt = rig.work / "small"
    mnt.mkdir()
    size_mb = int(rig.size * 1.2 / 1e6) + 8
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0
    if mounted:
        try:
            env = rig.env(mnt / "cache")
            proc = subprocess.Popen(WS + ["pull", "torture", "-q"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            start = rig.served()
            while rig.served() - start < rig.size // 4 and proc.poll() is None:
                time.sleep(0.005)  # past the free-space check and fetching: now the disk fills up
            filler = mnt / "filler"
            with open(filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            _, err = proc.communicate(timeout=600)
            STATS["tracebacks"] += "Traceback" in err
            corrupt = corrupt_finals(mnt / "cache", rig.files)
            filler.unlink()
            again = ws(["pull", "torture", "-q"], env)
            rows.append((f"disk fills up mid-pull (tmpfs {size_mb} MB)", f"exit {proc.returncode}, "
                         f"{corrupt} corrupt cached files; later pull: exit {again.returncode}",
                         err.strip().splitlines()[-1][:110] if err.strip() else ""))
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    cache = rig.work / "fsize"
    env = rig.env(cache)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (rig.size // len(rig.files) // 2,) * 2)

    proc = subprocess.run(WS + ["pull", "torture", "-q"], env=env, capture_output=True, text=True, preexec_fn=limit)
    STATS["tracebacks"] += "Traceback" in proc.stderr
    corrupt = corrupt_finals(cache, rig.files)
    again = ws(["pull", "torture", "-q"], env)
    rows.append(("file size limit hit mid-pull (RLIMIT_FSIZE)", f"exit {proc.returncode}, {corrupt} corrupt "
                 f"cached files; later pull: exit {again.returncode}", proc.stderr.strip().splitlines()[-1][:110]))
    return rows


def bad_input(rig: Rig) -> list[tuple]:
    sandbox = rig.work / "sandbox"
    sandbox.mkdir()
    env = rig.env(sandbox / "cache")
    outside_before = set(os.listdir(rig.work))
    manifests = malformed_manifests()
    codes, one_line = [], 0
    for i, text in enumerate(manifests.values()):
        path = sandbox / f"bad{i}.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        proc = ws(["pull", "m", "--manifest", str(path)], env, cwd=sandbox)
        codes.append(proc.returncode)
        one_line += proc.stderr.count("\n") == 1
    for i, name in enumerate(HOSTILE_NAMES):
        rig.state.add_repo(f"evil/names{i}", f"{i:040x}", {name: b"payload", "config.json": b"{}"})
        proc = ws(["pull", f"evil/names{i}"], env, cwd=sandbox)
        codes.append(proc.returncode)
        one_line += proc.stderr.count("\n") == 1
    escaped = set(os.listdir(rig.work)) - outside_before
    stray = [p for p in sandbox.rglob("*") if p.name in ("x", "abs", "payload")]
    return [(f"{len(manifests)} malformed manifests + {len(HOSTILE_NAMES)} hostile names from the hub",
             f"{codes.count(2)}/{len(codes)} exit 2, {one_line}/{len(codes)} one-line",
             f"files written outside the cache: {len(escaped) + len(stray)}")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=32)
    ap.add_argument("--shards", type=int, default=6)
    ap.add_argument("--shard-mb", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    rig = Rig(args)
    try:
        rows = kill_runs(rig, args.kills, rng) + concurrent(rig) + faults(rig) + disk_full(rig) + bad_input(rig)
        leaked = [q for q in rig.state.log if q.host != "hub" and "authorization" in q.headers]
    finally:
        rig.close()
    print("| scenario | outcome | detail |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{STATS['processes']} weightsafe processes, {STATS['tracebacks']} tracebacks, "
          f"{len(leaked)} Authorization headers sent to a host other than the hub; "
          f"{time.perf_counter() - t0:.0f} s in all.")


if __name__ == "__main__":
    main()
