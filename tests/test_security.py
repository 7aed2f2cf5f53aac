"""Fail closed against a hostile checkpoint (issue 12): the scan reads what torch reads, every file a
loader could unpickle is scanned, real torch checkpoints pass, and no input crashes the check."""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys

import pytest

from tests import hostile

torch = pytest.importorskip("torch")


LOADER = """import sys, torch
for path in sys.argv[1:]:
    try:
        torch.load(path, weights_only=False)
    except Exception:
        pass
"""


def torch_load_runs(*pairs) -> bool:
    """Control: does a plain ``torch.load(weights_only=False)`` in a child process run every payload?
    ``pairs``: (path, canary) alternating; one child for all, as importing torch is slow."""
    paths, canaries = pairs[0::2], pairs[1::2]
    for c in canaries:
        c.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-c", LOADER, *map(str, paths)], capture_output=True, timeout=120)
    ran = all(c.exists() for c in canaries)
    for c in canaries:
        c.unlink(missing_ok=True)
    return ran


def model(tmp_path, files: dict[str, bytes]):
    d = tmp_path / "model"
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return d


def check(ws, d, *args):
    res = ws("check", "--dir", str(d), "--json", *args)
    return res, json.loads(res.out)


def assert_torch_runs_them_and_check_refuses_them(ws, cases) -> None:
    """``cases``: (model dir, file, canary). The control first: plain torch.load runs every
    payload (each writes its canary); then `check` refuses each file as unsafe, and no payload ran."""
    assert torch_load_runs(*[x for d, name, canary in cases for x in (d / name, canary)])
    for d, name, canary in cases:
        res, report = check(ws, d, "--device", "cpu")
        assert res.code == 5 and any(p["file"] == name and p["unsafe"] for p in report["problems"]), report
        assert not canary.exists()


def messages(report) -> str:
    return "\n".join(p["message"] for p in report["problems"])


# ------------------------------------------------------------------ class 1: parser differentials

def test_two_members_named_data_pkl_torch_runs_the_first_and_we_refuse(ws, tmp_path):
    canary = tmp_path / "canary"
    evil = hostile.payloads(str(canary))["os.system"]
    d = model(tmp_path, {"pytorch_model.bin": hostile.duplicate_data_pkl(evil, pickle.dumps({}, protocol=2))})
    assert torch_load_runs(d / "pytorch_model.bin", canary)
    import zipfile  # the differential: Python's zipfile sees only the benign last copy
    assert pickle.loads(zipfile.ZipFile(d / "pytorch_model.bin").read("archive/data.pkl")) == {}
    res, report = check(ws, d, "--structure-only")
    assert res.code == 5 and "two members are named 'archive/data.pkl'" in messages(report)
    assert not canary.exists()


def test_a_pickle_prepended_to_a_valid_zip_is_refused_as_legacy_format(ws, tmp_path):
    canary = tmp_path / "canary"
    blob = hostile.payloads(str(canary))["os.system"] + hostile.torch_saved()
    d = model(tmp_path, {"pytorch_model.bin": blob})
    assert torch_load_runs(d / "pytorch_model.bin", canary)
    res, report = check(ws, d, "--structure-only")
    assert res.code == 5 and "legacy torch format (a bare pickle" in messages(report)
    assert not canary.exists()


def test_a_legacy_torch_tar_archive_is_refused_by_name(ws, tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for n in ("storages", "tensors", "pickle"):
            data = pickle.dumps(0, protocol=2)
            info = tarfile.TarInfo(n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    d = model(tmp_path, {"pytorch_model.bin": buf.getvalue()})
    res, report = check(ws, d, "--structure-only")
    assert res.code == 5 and "legacy torch tar format" in messages(report)


def test_a_storage_with_a_bad_crc_fails_the_load_pass(ws, tmp_path):
    """Storages are data, not code: the structure pass leaves them unread; the load pass, which reads
    every byte anyway, checks their CRCs (torch.load with mmap=True does not)."""
    blob, phrase = hostile.ambiguous_archives(hostile.torch_saved())["bad CRC in a storage"]
    d = model(tmp_path, {"pytorch_model.bin": blob})
    assert check(ws, d, "--structure-only")[0].code == 0
    res, report = check(ws, d, "--device", "cpu")
    assert res.code == 1 and phrase in messages(report), report


@pytest.mark.parametrize("case", [
    "bad CRC in data.pkl", "encrypted member", "unknown method",
    "zip64 locator pointing elsewhere", "end records disagree", "trailing bytes", "a second archive appended",
    "bytes before the first member", "zip bomb", "corrupt deflate", "member name not ASCII"])
def test_ambiguous_archive_layouts_are_refused_and_named(ws, tmp_path, case):
    blob, phrase = hostile.ambiguous_archives(hostile.torch_saved())[case]
    d = model(tmp_path, {"pytorch_model.bin": blob})
    res, report = check(ws, d, "--structure-only")
    assert res.code == 5, (case, report)
    assert phrase in messages(report), (case, messages(report))


def test_the_reader_accepts_what_torch_save_writes_and_reads_the_same_bytes(tmp_path):
    import zipfile

    from weightsafe.loadcheck.zipreader import open_archive

    state = {f"t{i}": torch.randn(i + 1, 3) for i in range(20)}
    path = tmp_path / "x.bin"
    torch.save(state, path)
    archive = open_archive(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(m.name for m in archive.members) == sorted(z.namelist())
        for m in archive.members:
            assert archive.read(m) == z.read(m.name)


# ------------------------------------------------------------------ class 3: real checkpoints must pass

def real_state_dict():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    sd = m.state_dict()  # an OrderedDict carrying _metadata: pickled with BUILD
    assert hasattr(sd, "_metadata")
    for dt in (torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16, torch.uint32, torch.uint64,
               torch.complex64, torch.bfloat16, torch.bool, torch.float16, torch.int8):
        sd[f"extra.{str(dt).split('.')[1]}"] = torch.zeros(2, 3, dtype=dt)
    sd["view.of.a.bigger.storage"] = torch.arange(12, dtype=torch.float32)[4:8]
    return sd


def test_real_torch_checkpoints_of_every_dtype_pass_in_both_formats(ws, tmp_path):
    from safetensors.torch import save_file

    sd = real_state_dict()
    d = tmp_path / "bin"
    d.mkdir()
    torch.save(sd, d / "pytorch_model.bin")
    res, report = check(ws, d, "--device", "cpu")
    assert res.code == 0, report["problems"]
    assert report["tensors"] == len(sd) and report["load"]["tensors"] == len(sd)
    s = tmp_path / "st"
    s.mkdir()
    save_file({k: v.contiguous() for k, v in sd.items()}, s / "model.safetensors")
    res, report = check(ws, s, "--device", "cpu")
    assert res.code == 0, report["problems"]
    assert report["tensors"] == len(sd)


def test_a_parameter_saved_whole_passes(ws, tmp_path):
    d = model(tmp_path, {})
    torch.save({"p": torch.nn.Parameter(torch.ones(3)), "b": torch.ones(2)}, d / "pytorch_model.bin")
    assert check(ws, d, "--device", "cpu")[0].code == 0


# ------------------------------------------------------------------ class 2: files the scan never looked at

SHARD_NAMES = ["model.ckpt", "weights.pt", "SHARD.BIN", "shard-without-extension", ".cache/hidden.bin"]


def test_an_index_naming_a_hostile_file_of_any_name_is_scanned(ws, tmp_path):
    from safetensors.torch import save

    cases = []
    for i, shard in enumerate(SHARD_NAMES):
        canary = tmp_path / f"canary{i}"
        evil = hostile.torch_zip(hostile.payloads(str(canary))["reduce_in_state_dict"])
        index = {"metadata": {}, "weight_map": {"a": "model-1.safetensors", "model.embed_tokens.weight": shard}}
        d = model(tmp_path / str(i), {"model-1.safetensors": save({"a": torch.ones(2)}), shard: evil,
                                      "model.safetensors.index.json": json.dumps(index).encode()})
        cases.append((d, shard, canary))
    assert_torch_runs_them_and_check_refuses_them(ws, cases)


def test_a_symlinked_shard_leaving_the_model_directory_is_refused(ws, tmp_path):
    from safetensors.torch import save

    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(save({"a": torch.ones(2)}))
    d = model(tmp_path, {})
    (d / "model.safetensors").symlink_to(outside)
    res, report = check(ws, d, "--structure-only")
    assert res.code == 5 and "a symlink leaving the model directory" in messages(report)


BESIDE = {"optimizer.pt": "os.system", "training_args.bin": "importlib.import_module",
          "rng_state.pth": "functools.partial", "extra_weights.pt": "builtins.exec", "data.pkl": "pickle.loads",
          "model.BIN": "stack_global_memo", "scheduler.pt": "posix.system", "args.bin": "builtins.eval"}


def test_a_hostile_pickle_beside_the_safetensors_is_refused(ws, tmp_path):
    from safetensors.torch import save

    cases = []
    for i, (name, payload) in enumerate(BESIDE.items()):
        canary = tmp_path / f"canary{i}"
        blob = hostile.payloads(str(canary))[payload]
        d = model(tmp_path / str(i), {"model.safetensors": save({"a": torch.ones(2)}),
                                      name: hostile.torch_zip(blob) if i % 2 else blob})
        cases.append((d, name, canary))
    assert_torch_runs_them_and_check_refuses_them(ws, cases)


def test_training_args_holding_an_object_passes_with_a_warning_and_strict_refuses_it(ws, tmp_path):
    from safetensors.torch import save

    d = model(tmp_path, {"model.safetensors": save({"a": torch.ones(2)})})
    torch.save(argparse.Namespace(learning_rate=1e-4, output_dir="out"), d / "training_args.bin")
    res, report = check(ws, d, "--structure-only")
    assert res.code == 0, report["problems"]
    assert any("training_args.bin: a pickle (not weights) that imports argparse.Namespace" in n
               for n in report["notes"])
    res, report = check(ws, d, "--structure-only", "--strict")
    assert res.code == 5 and "refused by --strict" in messages(report)


def test_an_optimizer_state_of_tensors_passes_without_a_warning(ws, tmp_path):
    from safetensors.torch import save

    d = model(tmp_path, {"model.safetensors": save({"a": torch.ones(2)})})
    torch.save({"state": {"m": torch.ones(2)}}, d / "optimizer.pt")
    res, report = check(ws, d, "--structure-only", "--strict")
    assert res.code == 0, report
    assert not any("optimizer.pt" in n for n in report["notes"])


def test_the_denylist_sees_through_attribute_chains_and_re_exports(tmp_path):
    from weightsafe.loadcheck.aux_pickles import dangerous

    assert dangerous("torch.serialization", "os.system")  # an attribute chain
    assert dangerous("somepackage.utils", "system")  # a re-export keeps its name
    assert dangerous("os.path", "join") and dangerous("builtins", "getattr")
    assert dangerous("argparse", "Namespace") is None
    assert dangerous("transformers.training_args", "TrainingArguments") is None


# ------------------------------------------------------------------ class 11: one error per broken shard

def test_a_truncated_shard_is_one_error_not_one_per_tensor(ws, seeds, tmp_path):
    from tests.test_loadcheck import write_replica

    d = write_replica(seeds["granite-8b-code-instruct-4k"], tmp_path / "m")
    shard = d / "model-00002-of-00004.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    res, report = check(ws, d, "--structure-only")
    assert res.code == 1
    assert [p["file"] for p in report["problems"]] == ["model-00002-of-00004.safetensors"], report["problems"]
    assert "holds only" in report["problems"][0]["message"]
