"""`weightsafe check`: headers, pickle safety, index and config agree, and the weights load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import hostile
from tests.replicas import write_replica


SEEDS = ["codefuse-34b", "granite-8b-code-instruct-4k", "granite-3.0-1b-a400m-instruct",
         "granite-3.0-2b-instruct", "octocoder", "starcoder-gpteacher-code-instruct"]


@pytest.fixture
def replica_dir(seeds, tmp_path):
    def make(name):
        return write_replica(seeds[name], tmp_path / name)
    return make


def check_json(ws, *args):
    res = ws("check", *args, "--json")
    return res, json.loads(res.out)


@pytest.mark.parametrize("name", SEEDS)
def test_each_seed_replica_passes_structure_and_cpu_load(ws, replica_dir, seeds, name):
    d = replica_dir(name)
    res, report = check_json(ws, "--dir", str(d), "--device", "cpu")
    assert res.code == 0, report["problems"]
    shards = [p for p in seeds[name].files if p.endswith((".bin", ".safetensors"))]
    assert sum(len(v) for v in report["formats"].values()) == len(shards)
    assert report["load"]["tensors"] == report["tensors"] > 0
    assert report["load"]["bytes"] == report["bytes"]
    assert report["load"]["fits"] is True
    assert any("expected from config.json, all present" in n for n in report["notes"])


def test_auto_device_without_a_gpu_says_so(ws, replica_dir):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = ws("check", "--dir", str(replica_dir("granite-3.0-2b-instruct")))
    assert res.code == 0 and "no CUDA GPU is available: the load check ran on the CPU" in res.out


def test_asking_for_cuda_without_a_gpu_is_a_usage_error(ws, replica_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = ws("check", "--dir", str(replica_dir("granite-3.0-2b-instruct")), "--device", "cuda")
    assert res.code == 2 and "no CUDA GPU" in res.err


@pytest.mark.cuda
def test_each_seed_replica_loads_on_the_gpu(ws, replica_dir):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    for name in SEEDS:
        res, report = check_json(ws, "--dir", str(replica_dir(name)), "--device", "cuda")
        assert res.code == 0, report["problems"]
        assert report["load"]["device"] == "cuda:0" and report["load"]["peak_device_bytes"] > 0


def test_pull_then_check_from_the_cache(ws, seeds, cache_dir):
    res = ws("pull", "octocoder", "--check", "--device", "cpu")
    assert res.code == 0, res
    assert "check passed" in res.out
    res = ws("check", "octocoder", "--structure-only")
    assert res.code == 0 and "load on" not in res.out


@pytest.mark.parametrize("name", SEEDS)
def test_transformers_loads_each_checked_replica_with_no_missing_or_unexpected_keys(replica_dir, name):
    transformers = pytest.importorskip("transformers")
    d = replica_dir(name)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(d), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info.get("mismatched_keys"), info


def test_structure_pass_reads_no_tensor_data(ws, tmp_path):
    """A 20 GB sparse safetensors file: the structure pass only reads its header."""
    d = tmp_path / "big"
    d.mkdir()
    n = 20 * 1024**3 // 2
    header = json.dumps({"w": {"dtype": "BF16", "shape": [n], "data_offsets": [0, 2 * n]}}).encode()
    path = d / "model.safetensors"
    with open(path, "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header)
        fh.truncate(8 + len(header) + 2 * n)
    res, report = check_json(ws, "--dir", str(d), "--structure-only")
    assert res.code == 0, report
    assert report["bytes"] == 2 * n and os.stat(path).st_blocks * 512 < 1024 * 1024


# ------------------------------------------------------------------ hostile pickles

@pytest.mark.parametrize("payload", list(hostile.payloads("/x")))
@pytest.mark.parametrize("wrapping", ["zip", "raw"])
def test_hostile_pickles_are_refused_and_nothing_runs(ws, tmp_path, payload, wrapping):
    canary = tmp_path / "canary"
    data = hostile.payloads(str(canary))[payload]
    d = tmp_path / "model"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(hostile.torch_zip(data) if wrapping == "zip" else data)
    res = ws("check", "--dir", str(d), "--device", "cpu")
    assert res.code == 5, res
    assert "UNSAFE" in res.err
    assert not canary.exists()


@pytest.mark.parametrize("payload, named", [("os.system", "os.system"), ("posix.system", "posix.system"), ("builtins.eval", "builtins.eval"),
                                            ("importlib.import_module", "importlib.import_module"),
                                            ("functools.partial", "functools.partial"),
                                            ("pickle.loads", "_pickle.loads"),
                                            ("stack_global_memo", "os.system")])
def test_the_offending_global_is_named(ws, tmp_path, payload, named):
    d = tmp_path / "model"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(hostile.torch_zip(hostile.payloads(str(tmp_path / "c"))[payload]))
    res = ws("check", "--dir", str(d))
    assert res.code == 5 and named in res.err and "refused global" in res.err, res


def test_the_hostile_corpus_is_live(tmp_path):
    """Control: each payload really runs code under a plain pickle.loads (in a child process)."""
    for name, data in hostile.payloads(str(tmp_path / "canary")).items():
        (tmp_path / "canary").unlink(missing_ok=True)
        subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                       input=data, capture_output=True, timeout=30)
        assert (tmp_path / "canary").exists(), name


def test_zip_tricks_are_refused(ws, seeds, tmp_path):
    import pickle

    benign = pickle.dumps({}, protocol=2)
    tricks = {
        "extra pickle": hostile.torch_zip(benign, {"archive/evil.pkl": benign}),
        "path escape": hostile.torch_zip(benign, {"archive/../../evil": b"x"}),
        "two folders": hostile.torch_zip(benign, {"other/data.pkl": benign}),
        "no data.pkl": hostile.torch_zip(benign, prefix="archive")[:0] or _zip_without_pkl(),
        "second pickle after STOP": hostile.torch_zip(benign + benign),
    }
    for what, blob in tricks.items():
        d = tmp_path / what.replace(" ", "_")
        d.mkdir()
        (d / "pytorch_model.bin").write_bytes(blob)
        res = ws("check", "--dir", str(d))
        assert res.code == 5, (what, res)


def _zip_without_pkl() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def test_a_real_checkpoint_with_a_hostile_tensor_entry_is_refused(ws, seeds, tmp_path):
    """A real codefuse shard whose data.pkl gained a REDUCE of os.system is refused."""
    d = write_replica(seeds["codefuse-34b"], tmp_path / "m")
    canary = tmp_path / "canary"
    (d / "pytorch_model-00003-of-00007.bin").write_bytes(
        hostile.torch_zip(hostile.payloads(str(canary))["reduce_in_state_dict"]))
    res = ws("check", "--dir", str(d))
    assert res.code == 5 and "pytorch_model-00003-of-00007.bin" in res.err and not canary.exists()


# ------------------------------------------------------------------ malformed safetensors and indexes

@pytest.mark.parametrize("case", list(hostile.malformed_safetensors()))
def test_malformed_safetensors_headers_each_get_their_own_error(ws, tmp_path, case):
    blob, phrase = hostile.malformed_safetensors()[case]
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(blob)
    res = ws("check", "--dir", str(d))
    assert res.code == 1, res
    assert phrase in res.err and "model.safetensors" in res.err, res.err


def _edit_index(d, fn):
    p = d / "model.safetensors.index.json"
    index = json.loads(p.read_text())
    fn(index)
    p.write_text(json.dumps(index))


@pytest.mark.parametrize("edit, phrase", [
    (lambda i: i["weight_map"].__setitem__("model.layers.0.mlp.up_proj.weight", "model-00009-of-00004.safetensors"),
     "not in the directory"),
    (lambda i: i["weight_map"].__setitem__("model.layers.0.mlp.up_proj.weight", "model-00002-of-00004.safetensors"),
     "the index says model-00002-of-00004.safetensors but it is in model-00001-of-00004.safetensors"),
    (lambda i: i["weight_map"].pop("model.norm.weight"), "stored in the shard but not listed in the index"),
    (lambda i: i["weight_map"].__setitem__("model.layers.9.extra.weight", "model-00004-of-00004.safetensors"),
     "listed in the index but not in its shard"),
    (lambda i: i["metadata"].__setitem__("total_size", 12), "total_size is 12"),
])
def test_index_mismatches_each_get_their_own_error(ws, replica_dir, edit, phrase):
    d = replica_dir("granite-8b-code-instruct-4k")
    _edit_index(d, edit)
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and phrase in res.err, res.err


def test_a_tensor_in_two_shards_is_named(ws, replica_dir, seeds):
    from safetensors.torch import load, save

    d = replica_dir("granite-8b-code-instruct-4k")
    first = load((d / "model-00001-of-00004.safetensors").read_bytes())
    last = load((d / "model-00004-of-00004.safetensors").read_bytes())
    last["model.embed_tokens.weight"] = first["model.embed_tokens.weight"]
    (d / "model-00004-of-00004.safetensors").write_bytes(save(last))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and "[model.embed_tokens.weight]: also stored in model-00004-of-00004.safetensors" in res.err


def test_a_shard_not_in_the_manifest_is_refused(ws, replica_dir, seeds, tmp_path):
    from tests.replicas import replica_manifest

    d = replica_dir("granite-8b-code-instruct-4k")
    text = replica_manifest(seeds["granite-8b-code-instruct-4k"])
    cut = text.index('[[files]]\npath = "model-00004-of-00004.safetensors"')
    end = text.index("[[files]]", cut + 5)
    (tmp_path / "m.toml").write_text(text[:cut] + text[end:])
    res = ws("check", "--dir", str(d), "--manifest", str(tmp_path / "m.toml"), "--structure-only")
    assert res.code == 1 and "which is not in the manifest" in res.err


def test_config_disagreeing_with_the_tensors_is_named(ws, replica_dir):
    d = replica_dir("codefuse-34b")
    config = json.loads((d / "config.json").read_text())
    config["intermediate_size"] = 256
    config["num_hidden_layers"] = 8
    (d / "config.json").write_text(json.dumps(config))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1
    assert "[model.layers.0.mlp.up_proj.weight]: shape [128, 64], but LlamaForCausalLM" in res.err
    assert "[model.layers.7.self_attn.q_proj.weight]: LlamaForCausalLM needs this tensor" in res.err


def test_numerics_counts_nan_and_inf(ws, tmp_path):
    import torch
    from safetensors.torch import save

    d = tmp_path / "m"
    d.mkdir()
    t = torch.zeros(8)
    t[1], t[2], t[3] = float("nan"), float("inf"), float("-inf")
    (d / "model.safetensors").write_bytes(save({"w": t, "ok": torch.ones(2)}))
    assert ws("check", "--dir", str(d), "--device", "cpu").code == 0
    res = ws("check", "--dir", str(d), "--device", "cpu", "--numerics")
    assert res.code == 1 and "[w]: 1 NaN and 2 Inf values" in res.err


def test_an_index_naming_a_shard_outside_the_model_is_unsafe(ws, replica_dir):
    d = replica_dir("granite-8b-code-instruct-4k")
    _edit_index(d, lambda i: i["weight_map"].__setitem__("model.norm.weight", "../../etc/passwd"))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 5 and "unsafe shard path '../../etc/passwd'" in res.err


def test_the_structure_pass_needs_no_torch(replica_dir, env):
    """Blocking `import torch` in the child: the structure pass of .bin and safetensors still works."""
    d = replica_dir("octocoder")
    code = ("import sys; sys.modules['torch'] = None; sys.modules['safetensors'] = None; "
            "from weightsafe.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "check", "--dir", str(d), "--structure-only"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "14 weight file(s) (7 safetensors, 7 bin)" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code, "check", "--dir", str(d)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "pip install 'weightsafe[load]'" in proc.stderr


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("fmt", ["model.safetensors", "pytorch_model.bin"])
def test_numerics_finds_each_nonfinite_value_in_either_format_and_dtype(tmp_path, dtype, fmt):
    """One reduction per shard finds which tensors are not all finite; those are counted exactly."""
    import torch
    from safetensors.torch import save_file

    from weightsafe.loadcheck.device import load_all

    dt = getattr(torch, dtype)
    bad_nan, bad_inf, good = torch.randn(64, 64).to(dt), torch.randn(64, 64).to(dt), torch.randn(64, 64).to(dt)
    bad_nan[3, 5] = float("nan")
    bad_inf[0, 0], bad_inf[63, 63] = float("inf"), float("-inf")
    tensors = {"nan": bad_nan, "inf": bad_inf, "good": good, "ids": torch.arange(4), "empty": torch.zeros(0, dtype=dt)}
    (save_file(tensors, str(tmp_path / fmt)) if fmt.endswith(".safetensors") else torch.save(tensors, tmp_path / fmt))
    stats, problems = load_all(tmp_path, [fmt], {}, "cpu", numerics=True)
    assert {k: (v["nan"], v["inf"]) for k, v in stats.nonfinite.items()} == {"nan": (1, 0), "inf": (0, 2)}
    assert stats.tensors == 5 and stats.bytes == sum(t.numel() * t.element_size() for t in tensors.values())
