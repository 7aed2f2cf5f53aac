"""A/B: two (or more) source trees of weightsafe timed against each other, interleaved.

    git archive HEAD src | tar -x -C /tmp/before      # the tree to compare with
    python bench/ab.py pull /tmp/before/src src      [--rounds 6] [--shards 8] [--shard-mb 128]
    python bench/ab.py verify /tmp/before/src src "src::-j 4"

Each TREE is a ``src`` directory (put first on PYTHONPATH), optionally ``TREE::ARGS`` with extra
command-line arguments. Every round runs the reference (curl x4 + sync for pull, the openssl jobs
for verify --full, cold) and then each tree in turn, so a disk that changes speed during the run
affects every version alike: on this project's VMs that drift is larger than most changes worth
measuring, which is why a table from another run is no baseline. Prints, per version, the median
wall time, the median CPU seconds of the process tree, and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import compileall
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import WS, drop_cache, run, served, synthetic_repo  # noqa: E402


def timed(cmd, env, cwd=None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the whole process tree) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("pull", "verify"))
    ap.add_argument("trees", nargs="+", metavar="TREE[::ARGS]")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=int, default=128)
    ap.add_argument("--cdn", choices=("nginx", "python"), default="nginx")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    versions = [(t, *t.partition("::")[::2]) for t in args.trees]
    for _, tree, _ in versions:
        compileall.compile_dir(str(Path(tree).resolve()), quiet=2)  # timed as installed: bytecode written once
    samples: dict[str, list[tuple[float, float]]] = {}
    name, files = args.what, synthetic_repo(args.shards, args.shard_mb)
    with served(args, name, files) as s:
        urls = " ".join(s.url(p) for p in files)
        if args.what == "verify":
            run(WS + ["pull", name, "-q"], s.env)
            paths = [str(p) for p in (s.work / "cache").rglob("*.safetensors")]
            quoted = " ".join(f"'{p}'" for p in paths)
        for r in range(args.rounds):
            d = s.work / f"ab{r}"
            (d / "ref").mkdir(parents=True)
            if args.what == "pull":
                ref = f"printf '%s\\n' {urls} | xargs -P 4 -n 1 curl -sfLO && sync"
            else:
                drop_cache(paths)
                ref = f"openssl dgst -md5 {quoted} >/dev/null & openssl dgst -sha256 {quoted} >/dev/null & wait"
            samples.setdefault("reference", []).append(timed(["bash", "-c", ref], s.env, d / "ref"))
            for i, (label, tree, extra) in enumerate(versions):
                env = {**s.env, "PYTHONPATH": str(Path(tree).resolve())}
                if args.what == "pull":
                    cmd = WS + ["pull", name, "-q", "--cache-dir", str(d / f"v{i}")]
                else:
                    drop_cache(paths)
                    cmd = WS + ["verify", name, "--full", "-q"]
                samples.setdefault(label, []).append(timed(cmd + extra.split(), env))
            shutil.rmtree(d)
    ref = [w for w, _ in samples["reference"]]
    print("reference:", "curl x4 + sync" if args.what == "pull" else "openssl md5 & sha256 jobs, cold")
    for label, xs in samples.items():
        walls = [w for w, _ in xs]
        ratio = statistics.median(a / b for a, b in zip(ref, walls))
        print(f"{label:30s} wall {statistics.median(walls):.3f} s  cpu {statistics.median(c for _, c in xs):.2f} s  "
              f"ratio {ratio:.2f}  [{' '.join(f'{w:.2f}' for w in walls)}]")


if __name__ == "__main__":
    main()
