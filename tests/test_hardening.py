"""Issue 19: the residual load-check classes. A weight file is judged as its loader reads it (by
name), every rule the safetensors reader applies is applied by the structure pass, and no object
the pickle allowlist can build can be bent by a later opcode into a crash."""

from __future__ import annotations

import json
import random
import struct

import pytest

from tests import hostile
from weightsafe.loadcheck import check

torch = pytest.importorskip("torch")


def model(tmp_path, files: dict[str, bytes]):
    d = tmp_path / "model"
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def one_line_problems(report) -> str:
    for p in report.problems:
        assert "\n" not in p.message, p
    return "\n".join(p.message for p in report.problems)


# ------------------------------------------------------------------ safetensors: the reference's rules

def _library_reads(path) -> bool:
    """Whether the reference reader (what the load pass uses) opens the file and every tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True
    except Exception:
        return False


POOL = [None, True, 0, -1, "NEG0", 1.0, 2**63, 2**64 - 1, 2**64, 2**70, [], {}, "x", "F32", "C128", "F8_E8M0",
        [2**32, 2**32, 0], [2**64, 0], [0, 2**64], [2, 2], [[2], [2]], [0, 16], [0, 2**64], {"k": "v"}, {"k": 1}]
PATHS = [("a", "dtype"), ("a", "shape"), ("a", "data_offsets"), ("b", "shape"), ("b", "data_offsets"),
         ("__metadata__",), ("__metadata__", "format"), ("a",), ("c",)]


def _header_variants():
    """(label, header bytes): every PATH set to every POOL value, then seeded byte mutations."""
    def base():
        h = hostile.good_header()
        h["__metadata__"] = {"format": "pt"}
        return h

    out = []
    for path in PATHS:
        for value in POOL:
            h = base()
            node = h
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = "__NEG0__" if value == "NEG0" else value
            out.append((f"{'.'.join(path)}={value!r:.30}", json.dumps(h).replace('"__NEG0__"', "-0").encode()))
    from tests.test_fuzz import mutate

    rng = random.Random(19)
    raw = json.dumps(base()).encode()
    for i in range(300):
        out.append((f"bytes#{i}", mutate(rng, raw)))
    return out


def test_the_structure_pass_fails_every_header_the_safetensors_library_fails(tmp_path):
    """Differential: for each mutated header, `check --structure-only` (here: ``check(load=False)``)
    must fail whenever ``safetensors.safe_open`` fails; it may be stricter, never looser."""
    d = model(tmp_path, {})
    path = d / "model.safetensors"
    looser, library_failed = [], 0
    for label, raw in _header_variants():
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(24))
        report = check(d, load=False)
        one_line_problems(report)
        if not _library_reads(path):
            library_failed += 1
            if report.ok:
                looser.append((label, raw[:200]))
    assert not looser, looser
    assert library_failed > 150  # the corpus really exercises the reader's refusals


@pytest.mark.parametrize("header, phrase", [
    ({"a": {"dtype": "F32", "shape": [2**32, 2**32, 0], "data_offsets": [0, 0]}}, "would overflow 64 bits"),
    ({"a": {"dtype": "F32", "shape": [2**64, 0], "data_offsets": [0, 0]}}, "a dimension of 2^64 or more"),
    ({"a": {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}}, "a dimension of 2^64 or more"),
    ({"__metadata__": [], "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, "not an array"),
    ({"__metadata__": 0, "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, "not a number"),
    ({"__metadata__": "", "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, "not a string"),
    ({"__metadata__": {"k": ["v"]}, "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, "strings to strings"),
    ({"a": {"dtype": "C128", "shape": [0], "data_offsets": [0, 0]}}, "unknown dtype 'C128'"),
])
def test_headers_the_library_refuses_fail_the_structure_pass_alone(ws, tmp_path, header, phrase):
    d = model(tmp_path, {"model.safetensors": hostile.safetensors_bytes(header, b"")})
    assert not _library_reads(d / "model.safetensors")
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and phrase in res.err, res


def test_minus_zero_is_a_float_to_the_reference_and_refused(ws, tmp_path):
    raw = b'{"a": {"dtype": "F32", "shape": [-0], "data_offsets": [0, 0]}}'
    d = model(tmp_path, {"model.safetensors": struct.pack("<Q", len(raw)) + raw})
    assert not _library_reads(d / "model.safetensors")
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and "non-negative integers" in res.err, res


def test_null_metadata_is_what_the_reference_reads_as_none_and_passes(ws, tmp_path):
    h = hostile.good_header()
    h["__metadata__"] = None
    d = model(tmp_path, {"model.safetensors": hostile.safetensors_bytes(h, bytes(24))})
    assert _library_reads(d / "model.safetensors")
    assert ws("check", "--dir", str(d), "--device", "cpu").code == 0


# ------------------------------------------------------------------ pickle: every opcode on every allowlisted object

@pytest.mark.parametrize("opcode", list(hostile.OPCODES))
@pytest.mark.parametrize("kind", list(hostile.ALLOWLIST_OBJECTS))
def test_an_opcode_applied_to_an_allowlisted_object_is_a_one_line_refusal(tmp_path, kind, opcode):
    """BUILD, SETITEM(S), APPEND(S) and calls on each object the allowlist can build (the state
    dict, storages, tensors of every rebuilder, parameters, torch.Size, dtypes, the types and
    functions themselves): a refusal (5) or a broken state dict (1), never a crash."""
    d = model(tmp_path, {"pytorch_model.bin": hostile.bent_state_dict(kind, opcode)})
    report = check(d, load=False)  # a crash raises here, which is what exit 70 was
    messages = one_line_problems(report)
    assert report.exit_code in (1, 5), (kind, opcode, messages)
    if opcode.startswith("BUILD") and kind.startswith(("typed", "untyped", "tensor", "parameter", "rebuild")):
        assert report.exit_code == 5 and "BUILD on a " in messages, messages


def test_a_bent_storage_is_refused_through_the_cli_not_exit_70(ws, tmp_path):
    d = model(tmp_path, {"pytorch_model.bin": hostile.bent_state_dict("typed storage", "BUILD")})
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 5 and "BUILD on a storage" in res.err and res.err.count("\n") == 1, res


def test_a_pickle_cannot_rewrite_the_scanners_own_functions(tmp_path):
    """BUILD (None, {"__defaults__": ...}) on a rebuild function would, on a plain function, set its
    defaults for every later scan in the process (a tensor without a dtype read as F64)."""
    bent = (b"\x80\x02" + hostile._ODICT + b"q\x00" + hostile._g("torch._utils", "_rebuild_tensor_v3")
            + b"N}" + hostile._u("__defaults__") + b"\x89N" + hostile._u("F64") + b"\x87s\x86b0.")
    d = model(tmp_path / "a", {"pytorch_model.bin": hostile.torch_zip(bent)})
    report = check(d, load=False)
    assert report.exit_code == 5 and "BUILD on a function" in one_line_problems(report)
    good = model(tmp_path / "b", {})
    torch.save({"w": torch.ones(2, dtype=torch.float16)}, good / "pytorch_model.bin")
    report = check(good, load=False)
    assert report.ok and report.bytes == 4, report.problems


# ------------------------------------------------------------------ the name a loader reads by, and the bytes

def _st_bytes() -> bytes:
    from safetensors.torch import save

    return save({"w": torch.ones(2)})


MISNAMED = {  # file name -> (content, the content's format as the message names it)
    "pytorch_model.bin": (_st_bytes, "a safetensors file"),
    "model.pt": (_st_bytes, "a safetensors file"),
    "model.safetensors": (lambda: hostile.torch_saved({"w": torch.ones(2)}), "a torch zip archive"),
}


def test_a_weight_file_whose_bytes_disagree_with_its_name_is_refused(ws, tmp_path):
    """transformers picks the reader by the name (``.safetensors`` -> safe_open, else torch.load), so
    a .bin holding safetensors bytes (or the reverse) fails to load though both readers here pass it."""
    transformers = pytest.importorskip("transformers.modeling_utils")
    for i, (name, (content, fmt)) in enumerate(MISNAMED.items()):
        d = model(tmp_path / str(i), {name: content()})
        with pytest.raises(Exception):  # the control: the consuming loader fails on it
            transformers.load_state_dict(str(d / name))
        res = ws("check", "--dir", str(d), "--structure-only")
        suffix = name[name.rindex("."):]
        assert res.code == 1 and f"named {suffix}" in res.err and fmt in res.err, res


def test_hostile_bytes_under_a_safetensors_name_are_still_scanned_and_refused_as_unsafe(ws, tmp_path):
    canary = tmp_path / "canary"
    d = model(tmp_path, {"model.safetensors": hostile.torch_zip(hostile.payloads(str(canary))["os.system"])})
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 5 and "refused global os.system" in res.err and "named .safetensors" in res.err, res
    assert not canary.exists()


def test_names_and_bytes_that_agree_pass(ws, tmp_path):
    d = model(tmp_path, {"model.safetensors": _st_bytes()})
    torch.save({"v": torch.ones(3)}, d / "pytorch_model.bin")
    res = ws("check", "--dir", str(d), "--device", "cpu")
    assert res.code == 0, res


# ------------------------------------------------------------------ manifests: nesting and what messages carry

MANIFEST = ('schema = 1\nname = "x"\nrepo = "o/x"\nrevision = "main"\n[sources]\nlocal = "l"\n'
            '[[files]]\npath = "{path}"\n')


@pytest.mark.parametrize("value", ["[" * 100_000 + "]" * 100_000, "{a = " * 100_000 + "1" + "}" * 100_000])
def test_toml_nested_100k_deep_is_a_manifest_error_naming_the_file(env, tmp_path, value):
    from tests.conftest import run_ws
    from weightsafe.errors import ManifestError
    from weightsafe.manifest import parse

    path = tmp_path / "deep.toml"
    path.write_text(f"schema = 1\nnotes = {value}\n")
    with pytest.raises(ManifestError, match="nested more than 32 deep"):
        parse(path.read_text(), str(path))
    res = run_ws("manifest", "lint", str(path), env=env)  # run_ws asserts no traceback
    assert res.code == 2 and str(path) in res.err and "nested more than" in res.err, res


def test_brackets_inside_strings_and_comments_are_not_nesting():
    from weightsafe.manifest import parse

    deep = "[" * 40
    text = MANIFEST.format(path="a.bin").replace(
        'name = "x"', f'name = "x" # {deep}\ndescription = """{deep} \\""" ""{deep}"""').replace(
        'local = "l"', f"local = '{deep}'")
    m = parse(text)
    assert m.description.startswith(deep) and m.sources["local"] == deep


def test_lint_and_manifest_errors_carry_no_raw_control_characters(ws, tmp_path):
    bidi = tmp_path / "bidi.toml"
    bidi.write_text(MANIFEST.format(path="evil\u202etxt.bin"), encoding="utf-8")
    esc = tmp_path / "esc.toml"
    esc.write_text(MANIFEST.format(path="a.bin") + '"\\u001b]0;pwned\\u0007" = 1\n')
    res = ws("manifest", "lint", str(bidi), str(esc), "--json")
    report = json.loads(res.out)
    texts = [w["message"] for m in report["manifests"] for w in m["warnings"]] + [e["field"] for e in report["errors"]]
    assert any("no-digest" == w["code"] for m in report["manifests"] for w in m["warnings"])
    assert len(report["errors"]) == 1 and res.code == 2, report
    for t in texts:
        assert t.isprintable(), t


# ------------------------------------------------------------------ a long card: read whole, or say what was not read

def _long_card(size: int, md5: str, shard: str) -> bytes:
    filler = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"
    return b"# card\n" + filler * (size // len(filler)) + f"\n## MD5\n{md5}  {shard}\n".encode()


def test_a_card_past_4_mib_is_read_to_its_end(ws, hub, seeds, tmp_path):
    import hashlib

    from tests.replicas import fake_commit
    from weightsafe import manifest as mf

    r = seeds["codefuse-34b"]
    shard = "pytorch_model-00002-of-00007.bin"
    md5 = hashlib.md5(r.files[shard]).hexdigest()
    commit = fake_commit("codefuse-long-card")
    hub.state.add_repo(r.repo, commit, {**r.files, "README.md": _long_card(5 << 20, md5, shard)}, branch="long")
    out = tmp_path / "long.toml"
    res = ws("manifest", "create", f"{r.repo}@long", "-o", str(out), "--name", "long")
    assert res.code == 0, res
    digest = mf.load(out).file(shard).digest("md5")
    assert digest is not None and digest.source == "card" and digest.hex == md5


def test_a_card_past_the_bound_is_a_finding_naming_what_was_not_read(ws, hub, seeds, tmp_path, monkeypatch):
    import hashlib

    from tests.replicas import fake_commit
    from weightsafe import authoring
    from weightsafe import manifest as mf

    monkeypatch.setattr(authoring, "MAX_CARD_BYTES", 1 << 20)  # the bound is 64 MiB; 1 MiB keeps the test small
    r = seeds["codefuse-34b"]
    shard = "pytorch_model-00002-of-00007.bin"
    card = _long_card(3 << 19, hashlib.md5(r.files[shard]).hexdigest(), shard)
    commit = fake_commit("codefuse-cut-card")
    hub.state.add_repo(r.repo, commit, {**r.files, "README.md": card}, branch="cut")
    out = tmp_path / "cut.toml"
    res = ws("manifest", "create", f"{r.repo}@cut", "-o", str(out), "--name", "cut")
    assert res.code == 0, res
    assert f"the last {len(card) - (1 << 20)} of its {len(card)} bytes were not read" in res.err, res.err
    assert any("not read" in n for n in mf.load(out).notes)
