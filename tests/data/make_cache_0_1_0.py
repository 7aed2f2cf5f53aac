"""How tests/data/cache-0.1.0 was made: weightsafe 0.1.0 (commit 9a94a73) pulled a tiny repo from
the hub replica (``pull ws-fixture/tiny --include *.json --include *.safetensors``, then ``verify``).

Not a test. To remake it, from a checkout of the old release::

    git -C REPO archive 9a94a73 src tests | tar -x -C /tmp/rel
    cd /tmp/rel && python REPO/tests/data/make_cache_0_1_0.py REPO/tests/data/cache-0.1.0

The partial/ directories it leaves are empty, so git does not keep them.
"""
import json, os, shutil, struct, subprocess, sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.hub_server import HubReplica, HubState
from tests.replicas import fake_commit

header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
files = {"config.json": json.dumps({"architectures": ["TinyForCausalLM"], "model_type": "tiny"}).encode(),
         "model.safetensors": struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4),
         "README.md": b"# tiny\n"}
state = HubState()
commit = fake_commit("ws-fixture/tiny")
state.add_repo("ws-fixture/tiny", commit, files)
out = Path(sys.argv[1]).resolve()
shutil.rmtree(out, ignore_errors=True)
with HubReplica(state) as hub:
    env = {**os.environ, "PYTHONPATH": str(Path("src").resolve()), "HF_ENDPOINT": hub.url,
           "WEIGHTSAFE_CACHE": str(out), "HF_HOME": str(out.parent / "hf-home"), "WEIGHTSAFE_MANIFEST_PATH": "/nonexistent"}
    for args in (["pull", "ws-fixture/tiny", "--include", "*.json", "--include", "*.safetensors"], ["verify", "ws-fixture/tiny"]):
        p = subprocess.run([sys.executable, "-m", "weightsafe", *args], env=env, capture_output=True, text=True)
        print(p.returncode, p.stdout, p.stderr)
print(commit)
