"""No input crashes the load check (issue 12, classes 4, 5 and 7): every hostile or mangled file
ends in a one-line error with a documented exit code, never a traceback or exit 70, and a limit
that is hit is named; cards and manifests (issue 19) parse in bounded time and fail only by
the documented error. The fuzzers are seeded and bounded so CI time stays fixed."""

from __future__ import annotations

import json
import pickle
import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import hostile
from tests.conftest import run_ws
from weightsafe.loadcheck import check

torch = pytest.importorskip("torch")

EXIT_CODES = {0, 1, 5}


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    """Real files to mangle: a torch.save archive, a safetensors file, an index and a config."""
    from safetensors.torch import save

    sd = torch.nn.Linear(4, 3).state_dict()
    st_bytes = save({"model.norm.weight": torch.ones(4), "lm_head.weight": torch.zeros(3, 4)})
    index = {"metadata": {"total_size": 64}, "weight_map": {"model.norm.weight": "model.safetensors",
                                                             "lm_head.weight": "model.safetensors"}}
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4, "num_attention_heads": 2,
              "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 3, "torch_dtype": "float32"}
    return {"pytorch_model.bin": hostile.torch_saved(dict(sd)), "model.safetensors": st_bytes,
            "model.safetensors.index.json": json.dumps(index).encode(), "config.json": json.dumps(config).encode()}


INTERESTING = [b"\x00", b"\xff", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"PK\x03\x04", b"PK\x01\x02",
               b"PK\x05\x06", b"PK\x06\x06", b"\x80\x02", b"c", b"\x93", b"R", b".", b"{", b"[", b'"', b"-1",
               b"1e999", b"\\ud800", b"\x9b", b"\x1b[31m"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.randrange(5)
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i:i] = rng.choice(INTERESTING)
        elif op == 2:
            del b[i:i + rng.randint(1, 16)]
        elif op == 3:
            v = rng.choice(INTERESTING)
            b[i:i + len(v)] = v
        else:
            del b[i:]
    return bytes(b)


def test_seeded_mutations_of_real_files_never_crash_the_check(tmp_path, originals):
    """~15 s of mutations (fixed seed, fixed order); each run is the library's check, in-process."""
    rng = random.Random(12)
    d = tmp_path / "m"
    d.mkdir()
    deadline, runs, codes = time.monotonic() + 15, 0, set()
    while time.monotonic() < deadline and runs < 3000:
        victim = rng.choice(sorted(originals))
        for name, data in originals.items():
            (d / name).write_bytes(mutate(rng, data) if name == victim else data)
        report = check(d, load=False)  # raises on a crash: that is the failure this test exists for
        assert report.exit_code in EXIT_CODES, report.problems
        for p in report.problems:
            assert "\n" not in p.message, p
        runs += 1
        codes.add(report.exit_code)
    assert runs >= 200 and codes >= {1, 5}, (runs, codes)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=4), max_leaves=12)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(["architectures", "hidden_size", "num_attention_heads", "num_hidden_layers",
                              "num_key_value_heads", "torch_dtype", "tie_word_embeddings", "vocab_size"]),
       value=json_values, index_edit=st.sampled_from(["weight_map", "metadata", "total_size", None]),
       index_value=json_values)
def test_configs_and_indexes_of_any_json_shape_never_crash(tmp_path_factory, originals, field, value, index_edit,
                                                          index_value):
    d = tmp_path_factory.mktemp("j")
    config = json.loads(originals["config.json"])
    config[field] = value
    index = json.loads(originals["model.safetensors.index.json"])
    if index_edit == "total_size":
        index["metadata"]["total_size"] = index_value
    elif index_edit:
        index[index_edit] = index_value
    for name, data in originals.items():
        (d / name).write_bytes(data)
    (d / "config.json").write_text(json.dumps(config))
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    assert check(d, load=False).exit_code in EXIT_CODES


def _deep(n: int) -> str:
    return "[" * n + "]" * n


HOSTILE_JSON = {
    "config nested 100k deep": ("config.json", '{"architectures": ' + _deep(100_000) + "}", 1, "nested too deeply"),
    "architectures = 5": ("config.json", '{"architectures": 5}', 1, "architectures must be a list"),
    "num_hidden_layers = 1e12": ("config.json", json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 4,
                                                           "num_hidden_layers": 10**12}), 1, "not a layer count"),
    "weight_map is a list": ("model.safetensors.index.json", '{"weight_map": ["a", "b"]}', 1, "weight_map is not"),
    "weight_map to numbers": ("model.safetensors.index.json", '{"weight_map": {"a": 1, "b": "x"}}', 1,
                              "weight_map is not"),
    "duplicate keys": ("model.safetensors.index.json", '{"weight_map": {}, "weight_map": {}}', 1, "duplicate key"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_hostile_json_is_one_named_error_in_a_real_process(env, tmp_path, originals, case):
    name, text, code, phrase = HOSTILE_JSON[case]
    d = tmp_path / "m"
    d.mkdir()
    for n, data in originals.items():
        if n != "pytorch_model.bin":
            (d / n).write_bytes(data)
    (d / name).write_text(text)
    res = run_ws("check", "--dir", str(d), "--structure-only", env=env)  # run_ws asserts no traceback
    assert res.code == code and phrase in res.err, res


def _ops_pickle(n: int) -> bytes:
    """A pickle of ``n`` opcodes that builds nothing dangerous: n/2 pairs of (push None, pop)."""
    return b"\x80\x02" + b"N0" * (n // 2) + b"}."


def test_a_pickle_of_millions_of_opcodes_hits_the_named_limit(ws, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(hostile.torch_zip(_ops_pickle(2_100_000)))
    start = time.monotonic()
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 5 and "opcodes: limit hit" in res.err
    assert time.monotonic() - start < 30


def test_a_pickle_nested_past_the_limit_is_refused(ws, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(hostile.torch_zip(b"\x80\x02" + b"(" * 5000 + b"."))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 5 and "limit hit" in res.err


@pytest.mark.parametrize("name", [b"evil\x1b]0;pwned\x07.bin", "csi\x9b31m.bin".encode(), "bidi\u202e.bin".encode(),
                                  b"nl\nname.bin", b"not-utf8-\xff.bin"])
def test_hostile_file_names_print_escaped_and_stay_exact_in_json(env, tmp_path, name):
    """A name an attacker chose reaches the terminal only escaped; --json keeps it exact."""
    import os

    d = tmp_path / "m"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), name), "wb") as fh:
        fh.write(pickle.dumps({}, protocol=2))  # a bare pickle: refused, named by its file
    res = run_ws("check", "--dir", str(d), "--structure-only", env=env)
    assert res.code == 5, res
    for ch in "\x1b\x9b\u202e\x07":
        assert ch not in res.err and ch not in res.out
    assert res.err.count("\n") == 1, res.err  # one problem line: the newline in the name stays escaped
    res = run_ws("check", "--dir", str(d), "--structure-only", "--json", env=env)
    assert json.loads(res.out)["problems"][0]["file"] == os.fsdecode(name) and res.code == 5


def test_a_safetensors_name_with_a_lone_surrogate_is_a_named_error(ws, tmp_path):
    header = b'{"a\\ud800": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and "lone surrogate" in res.err


@pytest.mark.parametrize("header, phrase", [
    ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}, "overflow 64 bits"),
    ({"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, "unknown dtype"),
    ({"__metadata__": {"k": 1}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "strings to strings"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, "0 <= begin <= end"),
    ({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, "non-negative integers"),
])
def test_safetensors_header_rules_each_have_a_named_error(ws, tmp_path, header, phrase):
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(hostile.safetensors_bytes(header, bytes(4)))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and phrase in res.err, res


def test_duplicate_keys_in_a_safetensors_header_are_refused(ws, tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    header = f'{{"a": {entry}, "a": {entry}}}'.encode()
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    res = ws("check", "--dir", str(d), "--structure-only")
    assert res.code == 1 and "duplicate key 'a'" in res.err


# ------------------------------------------------------------------ cards and manifests (issue 19)

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CARD_TOKENS = [b"|", b"```", b"```sha1sum\n", b"    ", b"\t", b"# ", b"MD5 (", b") = ", b"*", b"`", b":", b" = ",
               b"\n", b"- ", b"(sha256)", b"$ sha1sum -b ", b" " * 3000, b"_" * 2000, b"\x1b[31m", b"\x9b",
               "\u202e".encode(), b"8d544b1bcb3449934184d4141137329c",
               b"da39a3ee5e6b4b0d3255bfef95601890afd80709  config.json\n"]


def _card_texts() -> list[bytes]:
    """The shipped card, and the seed cards in /work/shared/seeds where that folder exists."""
    import glob

    return [open(p, "rb").read() for p in sorted(glob.glob(str(ROOT / "tests" / "cards" / "*.md"))
                                                  + glob.glob("/work/shared/seeds/*.txt"))]


def _mutate_text(rng: random.Random, data: bytes, tokens: list[bytes]) -> bytes:
    b = bytearray(mutate(rng, data))
    for _ in range(rng.randint(0, 6)):
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.choice(tokens)
    return bytes(b)


def test_seeded_mutations_of_real_cards_never_raise_and_stay_fast():
    """~4 s of mutated cards: import never raises, one card never takes a second, and no finding
    carries a raw control character."""
    from weightsafe.cards import import_digests

    texts = _card_texts()
    files = ["config.json", "README.md"] + [f"pytorch_model-0000{i}-of-00007.bin" for i in range(1, 8)]
    rng = random.Random(19)
    deadline, runs = time.monotonic() + 4, 0
    while time.monotonic() < deadline and runs < 2000:
        text = _mutate_text(rng, rng.choice(texts), CARD_TOKENS).decode("utf-8", errors="replace")
        start = time.perf_counter()
        got = import_digests(text, files if runs % 2 else None)
        assert time.perf_counter() - start < 1, text[:200]
        for f in got.findings:
            assert f.message.isprintable(), f.message
        runs += 1
    assert runs >= 50, runs


TOML_TOKENS = [b"[", b"]", b"{", b"}", b"[[files]]\n", b'"', b"'", b'"""', b"'''", b"#", b"\\", b"=", b"\n",
               b"[" * 50, b"{a=" * 40, b"= " + b"[" * 3000, b"= " + b"{a=" * 1500, b"\\u0000", b"\x1b", b"1e999",
               b"-0", b"0x10", b"inf", b"nan", b"true"]


def test_seeded_mutations_of_the_shipped_manifests_raise_only_manifest_errors():
    import glob

    from weightsafe.errors import ManifestError
    from weightsafe.manifest import parse

    texts = [open(p, "rb").read() for p in sorted(glob.glob(str(ROOT / "manifests" / "*.toml")))]
    assert texts
    rng = random.Random(7)
    deadline, runs, refused = time.monotonic() + 4, 0, 0
    while time.monotonic() < deadline and runs < 3000:
        raw = _mutate_text(rng, rng.choice(texts), TOML_TOKENS)
        try:
            parse(raw, "fuzzed.toml")  # raises anything but ManifestError: that is the failure
        except ManifestError as e:
            assert str(e).startswith("fuzzed.toml: ") and "\n" not in str(e).split(": ", 2)[1], e
            refused += 1
        runs += 1
    assert runs >= 200 and refused > runs // 4, (runs, refused)


GGUF_NUMBERS = [0, 1, 2, 3, 4, 5, 8, 31, 32, 33, 63, 64, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                2**62, 2**63 - 1, 2**63, 2**64 - 1]


def mutate_gguf(rng: random.Random, data: bytes, header: int) -> bytes:
    """Byte mutations anywhere, and numbers that break parsers written over the header's
    lengths, counts, types, dimensions and offsets (u32 and u64 at every position)."""
    if rng.random() < 0.4:
        return mutate(rng, data)
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(4, header)
        width = rng.choice((4, 8))
        value = rng.choice(GGUF_NUMBERS) % (2 ** (8 * width))
        b[at:at + width] = value.to_bytes(width, "little")
    return bytes(b)


def test_seeded_mutations_of_real_gguf_files_never_crash_the_check(tmp_path):
    """~8 s of mutations of a real GGUFWriter model (a tiny llama, Q8_0) through the structure
    pass, the reference differential and the CPU load pass: exit 0, 1 or 5, one-line problems,
    each run fast whatever the header claims."""
    pytest.importorskip("gguf")
    from tests import gguf_files

    src = tmp_path / "src"
    src.mkdir()
    original = gguf_files.tiny_llama(src / "t.gguf", gguf_files.Q.Q8_0)[0].read_bytes()
    from weightsafe.loadcheck.gguf_header import read_gguf

    header = read_gguf(src / "t.gguf", "t").data_start
    rng = random.Random(21)
    d = tmp_path / "m"
    d.mkdir()
    deadline, runs, codes, slowest = time.monotonic() + 8, 0, set(), 0.0
    while time.monotonic() < deadline and runs < 3000:
        (d / "model.gguf").write_bytes(mutate_gguf(rng, original, header))
        start = time.monotonic()
        report = check(d, device="cpu", numerics=True)
        slowest = max(slowest, time.monotonic() - start)
        assert report.exit_code in EXIT_CODES, report.problems
        for p in report.problems:
            assert "\n" not in p.message, p
        runs += 1
        codes.add(report.exit_code)
    assert runs >= 50 and codes >= {1, 5}, (runs, codes)
    assert slowest < 5, slowest
