"""GGUF (issue 21): recognised by magic, its structure checked by a bounded parser and held against
llama.cpp's reference reader, split sets and architectures checked, every tensor read, and
hostile files refused with exit 1 (malformed) or 5 (crafted), never a crash."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import gguf_files as gf
from tests.conftest import run_ws
from weightsafe.loadcheck import check
from weightsafe.loadcheck import gguf_reference
from weightsafe.loadcheck.gguf_header import read_gguf

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType


def _dir(tmp_path: Path, name: str = "m") -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    return d


def _write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    d = _dir(tmp_path)
    (d / name).write_bytes(data)
    return d


def _structure(d: Path):
    report = check(d, load=False)
    return report.exit_code, " | ".join(str(p) for p in report.problems), report


def _cli(*args: str) -> tuple[int, str, str]:
    res = run_ws(*args, env=dict(os.environ), timeout=120)  # asserts no traceback
    return res.code, res.out, res.err


# ------------------------------------------------------------------ real files pass

@pytest.mark.parametrize("qtype", [None, Q.F16, Q.Q8_0, Q.Q4_K, Q.BF16], ids=["F32", "F16", "Q8_0", "Q4_K", "BF16"])
def test_real_files_of_each_type_pass_structure_and_load(tmp_path, qtype):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "tiny.gguf", qtype, embd=256 if qtype == Q.Q4_K else gf.EMBD)  # Q4_K rows: 256 values
    report = check(d, device="cpu", numerics=True)
    assert report.ok, report.problems
    assert report.formats == {"gguf": ["tiny.gguf"]}
    assert report.load.tensors == report.tensors == 21 and report.load.bytes == report.bytes
    kind = "F32" if qtype is None else qtype.name
    assert kind in report.load.dtypes
    assert any("llama, 2 blocks, all present" in n for n in report.notes)


def test_a_split_set_of_three_passes_as_one_model(tmp_path):
    d = _dir(tmp_path)
    parts = gf.tiny_llama(d / "tiny-Q8_0.gguf", Q.Q8_0, split_max_tensors=8)
    assert [p.name for p in parts] == [f"tiny-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    report = check(d, device="cpu")
    assert report.ok, report.problems
    assert report.tensors == 21
    assert any("tiny-Q8_0-*-of-00003.gguf: llama, 2 blocks, all present" in n for n in report.notes)


def test_cli_reports_gguf_and_a_repo_of_several_quantisations(tmp_path):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "tiny-F16.gguf", Q.F16)
    gf.tiny_llama(d / "tiny-Q4_K.gguf", Q.Q4_K, embd=256)
    gf.tiny_llama(d / "tiny-Q8_0.gguf", Q.Q8_0, split_max_tensors=8)
    (d / "README.md").write_text("# tiny\n")
    code, out, err = _cli("check", "--dir", str(d), "--device", "cpu", "--json")
    report = json.loads(out)
    assert code == 0, err
    assert len(report["formats"]["gguf"]) == 5 and report["load"]["tensors"] == 63


def test_gguf_is_recognised_by_its_magic_not_its_name(tmp_path):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "weights.dat")
    report = check(d, load=False)
    assert report.ok and report.formats == {"gguf": ["weights.dat"]}, report.problems
    (d / "weights.dat").rename(d / "model.bin")  # torch.load would unpickle it: refused
    code, msg, _ = _structure(d)
    assert code == 5 and "reads as a pickle" in msg


def test_the_bulk_array_reference_agrees_with_the_unmodified_gguf_reader(tmp_path):
    d = _dir(tmp_path)
    files = gf.tiny_llama(d / "a.gguf", Q.Q4_K, embd=256) + gf.tiny_llama(d / "s.gguf", Q.Q8_0, split_max_tensors=8)
    (d / "n.gguf").write_bytes(gf.build([gf.kv_str("general.architecture", "llama"), _nested_kv(3)],
                                        [gf.info("w", [8], 0, 0)], bytes(32)))
    for path in files + [d / "n.gguf"]:
        plain = gguf.GGUFReader(str(path))
        expected = [(t.name, int(t.tensor_type), tuple(int(x) for x in t.shape), int(t.data_offset), int(t.n_bytes))
                    for t in plain.tensors]
        assert gguf_reference.reference_view(path) == (int(plain.alignment), int(plain.data_offset), expected)


def test_structure_pass_reads_no_tensor_data_of_a_20_gb_sparse_file(tmp_path):
    d = _dir(tmp_path)
    n = 20 * 1024**3 // 4
    data = gf.build([gf.kv_str("general.architecture", "llama")], [gf.info("w", [n], 0, 0)], b"")
    with open(d / "big.gguf", "wb") as fh:
        fh.write(data)
        fh.truncate(len(data) + 4 * n)
    start = time.monotonic()
    report = check(d, load=False)
    assert report.ok and report.bytes == 4 * n, report.problems
    assert time.monotonic() - start < 5 and os.stat(d / "big.gguf").st_blocks * 512 < 1024 * 1024


# ------------------------------------------------------------------ hostile: one test per class

def test_huge_string_lengths_are_crafted(tmp_path):
    data = gf.build([gf.gstr("general.architecture", 2**62) + b"x"], [], b"")
    code, msg, _ = _structure(_write(tmp_path, data))
    assert code == 5 and "more than the whole" in msg, msg


def test_huge_array_lengths_are_crafted(tmp_path):
    arr = struct.pack("<IQ", gf.STRING, 2**61)
    code, msg, _ = _structure(_write(tmp_path, gf.build([gf.kv("tokenizer.ggml.tokens", gf.ARRAY, arr)], [], b"")))
    assert code == 5 and "array length" in msg and "more than the whole" in msg, msg
    arr = struct.pack("<IQ", gf.U32, 2**40)  # fixed-size items: bounded the same way
    code, msg, _ = _structure(_write(tmp_path, gf.build([gf.kv("x", gf.ARRAY, arr)], [], b"")))
    assert code == 5 and "more than the whole" in msg, msg


def test_tensor_and_kv_counts_are_bounded_by_the_file_size(tmp_path):
    code, msg, _ = _structure(_write(tmp_path, gf.minimal(n_tensors=2**40)))
    assert code == 5 and "tensor count" in msg, msg
    code, msg, _ = _structure(_write(tmp_path, gf.minimal(n_kv=2**63)))
    assert code == 5 and "key-value count" in msg, msg


def test_tensor_data_past_the_end_of_the_file_is_malformed(tmp_path):
    data = gf.build([], [gf.info("w", [8], 0, 0), gf.info("v", [8], 0, 2**40)], bytes(64))
    code, msg, _ = _structure(_write(tmp_path, data))
    assert code == 1 and ("past the end" in msg or "gap" in msg), msg
    real = gf.tiny_llama(_dir(tmp_path, "r") / "t.gguf")[0]
    real.write_bytes(real.read_bytes()[:-1000])  # a truncated download
    code, msg, _ = _structure(real.parent)
    assert code == 1 and "runs past the end" in msg and "truncated" in msg, msg


def test_dimension_products_that_overflow_are_crafted(tmp_path):
    data = gf.build([], [gf.info("w", [2**32, 2**32], 0, 0)], bytes(32))
    code, msg, _ = _structure(_write(tmp_path, data))
    assert code == 5 and "overflows int64" in msg, msg
    data = gf.build([], [gf.info("w", [2**63 + 1], 0, 0)], bytes(32))
    code, msg, _ = _structure(_write(tmp_path, data))
    assert code == 5 and "overflow int64" in msg, msg


def test_too_many_dimensions_are_crafted_and_none_is_malformed(tmp_path):
    code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [1] * 5, 0, 0)], bytes(32))))
    assert code == 5 and "5 dimensions" in msg, msg
    code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [8], 0, 0, n_dims=2**31)], bytes(32))))
    assert code == 5 and "dimensions" in msg, msg
    code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [], 0, 0)], bytes(32))))
    assert code == 1 and "no dimensions" in msg, msg


def test_a_zero_dimension_llama_cpp_divides_by_is_crafted(tmp_path):
    code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [8, 0], 0, 0)], bytes(32))))
    assert code == 5 and "divides by it" in msg, msg


def test_unknown_ggml_types_and_partial_blocks_are_malformed(tmp_path):
    for type_id in (4, 99, 2**32 - 1):  # 4: Q4_2, removed from ggml
        code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [8], type_id, 0)], bytes(32))))
        assert code == 1 and f"unknown ggml type {type_id}" in msg, msg
    code, msg, _ = _structure(_write(tmp_path, gf.build([], [gf.info("w", [48], 8, 0)], bytes(64))))
    assert code == 1 and "not a multiple of its block size 32" in msg, msg


def test_offsets_must_be_aligned_in_order_without_overlap_or_trailing_bytes(tmp_path):
    eight = np.ones(8, np.float32).tobytes()
    cases = {
        "not a multiple of the alignment": gf.build([], [gf.info("w", [8], 0, 4)], bytes(4) + eight),
        "overlaps the previous": gf.build([], [gf.info("w", [16], 0, 0), gf.info("v", [8], 0, 32)], eight * 3),
        "a gap of 32 bytes": gf.build([], [gf.info("w", [8], 0, 0), gf.info("v", [8], 0, 64)], eight * 3),
        "trailing bytes": gf.minimal() + b"hidden payload" * 8,
    }
    for phrase, data in cases.items():
        code, msg, _ = _structure(_write(tmp_path, data))
        assert code == 1 and phrase in msg, (phrase, msg)


def test_alignment_must_be_a_u32_power_of_two(tmp_path):
    arch = gf.kv_str("general.architecture", "llama")
    code, msg, _ = _structure(_write(tmp_path, gf.build([arch, gf.kv_u32("general.alignment", 48)],
                                                        [gf.info("w", [8], 0, 0)], bytes(32), alignment=48)))
    assert code == 1 and "not a power of two" in msg, msg
    code, msg, _ = _structure(_write(tmp_path, gf.build([arch, gf.kv_str("general.alignment", "32")],
                                                        [gf.info("w", [8], 0, 0)], bytes(32))))
    assert code == 5 and "not a u32" in msg, msg
    ok = gf.build([arch, gf.kv_u32("general.alignment", 64)], [gf.info("w", [8], 0, 0)], bytes(64), alignment=64)
    assert _structure(_write(tmp_path, ok))[0] == 0


def test_strings_names_and_keys_are_utf8_bounded_and_unique(tmp_path):
    cases = {
        "not valid UTF-8": gf.build([gf.kv_str("general.name", b"\xff\xfe")], [gf.info("w", [8], 0, 0)], bytes(32)),
        "llama.cpp's limit is 63": gf.build([], [gf.info("w" * 64, [8], 0, 0)], bytes(32)),
        "duplicate tensor name": gf.build([], [gf.info("w", [8], 0, 0), gf.info("w", [8], 0, 32)], bytes(64)),
        "duplicate metadata key": gf.build([gf.kv_u32("a", 1), gf.kv_u32("a", 2)], [gf.info("w", [8], 0, 0)],
                                           bytes(32)),
        "bool of value 7": gf.build([gf.kv("b", gf.BOOL, b"\x07")], [gf.info("w", [8], 0, 0)], bytes(32)),
        "unknown value type 13": gf.build([gf.kv("b", 13, b"\x00")], [gf.info("w", [8], 0, 0)], bytes(32)),
    }
    for phrase, data in cases.items():
        code, msg, _ = _structure(_write(tmp_path, data))
        assert code == 1 and phrase in msg, (phrase, msg)
    bad_in_array = struct.pack("<IQ", gf.STRING, 2) + gf.gstr("ok") + gf.gstr(b"\xc3")
    code, msg, _ = _structure(_write(tmp_path, gf.build([gf.kv("t", gf.ARRAY, bad_in_array)],
                                                        [gf.info("w", [8], 0, 0)], bytes(32))))
    assert code == 1 and "not valid UTF-8" in msg, msg


def test_versions_other_than_2_and_3_are_malformed(tmp_path):
    for version, phrase in ((1, "GGUF version 1"), (4, "GGUF version 4"), (3 << 24, "big-endian")):
        code, msg, _ = _structure(_write(tmp_path, gf.minimal(version=version)))
        assert code == 1 and phrase in msg, msg
    assert _structure(_write(tmp_path, gf.minimal(version=2)))[0] == 0


def _nested_kv(depth: int) -> bytes:
    payload = struct.pack("<IQ", gf.U8, 3) + b"\x01\x02\x03"
    for _ in range(depth - 1):
        payload = struct.pack("<IQ", gf.ARRAY, 1) + payload
    return gf.kv("nested", gf.ARRAY, payload)


def test_nested_arrays_are_read_and_their_depth_is_bounded(tmp_path):
    arch = gf.kv_str("general.architecture", "llama")
    code, msg, report = _structure(_write(tmp_path, gf.build([arch, _nested_kv(3)], [gf.info("w", [8], 0, 0)],
                                                             bytes(32))))
    assert code == 0 and any("array of arrays" in n for n in report.notes), msg
    code, msg, _ = _structure(_write(tmp_path, gf.build([arch, _nested_kv(5000)], [gf.info("w", [8], 0, 0)],
                                                        bytes(32))))
    assert code == 5 and "nested 8 deep: limit hit" in msg, msg


def test_metadata_element_count_is_limited(tmp_path):
    n = 4_000_001  # empty strings: 8 zero bytes each, so the file really holds them all
    arr = struct.pack("<IQ", gf.STRING, n) + bytes(8 * n)
    code, msg, _ = _structure(_write(tmp_path, gf.build([gf.kv("t", gf.ARRAY, arr)], [], b"")))
    assert code == 5 and "limit hit" in msg, msg


def test_a_file_the_reference_reader_fails_on_is_refused(tmp_path):
    """llama.cpp accepts a key named GGUF.version; GGUFReader's own synthetic field has that name
    and it raises: the two readers disagree, so the file is refused."""
    data = gf.build([gf.kv_str("general.architecture", "llama"), gf.kv_u32("GGUF.version", 3)],
                    [gf.info("w", [8], 0, 0)], bytes(32))
    code, msg, _ = _structure(_write(tmp_path, data))
    assert code == 5 and "the reference reader (gguf.GGUFReader) fails" in msg, msg


@pytest.mark.parametrize("edit, phrase", [
    (lambda t: [(t[0][0], t[0][1], t[0][2], t[0][3] + 32, t[0][4])] + t[1:], "reads this tensor as"),
    (lambda t: t[1:], "the reference reader sees 20 tensors"),
    (lambda t: [(t[0][0], 0, *t[0][2:])] + t[1:], "reads this tensor as"),
])
def test_a_disagreement_with_the_reference_reader_is_refused(tmp_path, monkeypatch, edit, phrase):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", Q.Q8_0)
    real = gguf_reference.reference_view

    def skewed(path):
        alignment, offset, tensors = real(path)
        return alignment, offset, edit(tensors)

    monkeypatch.setattr(gguf_reference, "reference_view", skewed)
    code, msg, _ = _structure(d)
    assert code == 5 and phrase in msg, msg


# ------------------------------------------------------------------ split sets

def _split(tmp_path) -> tuple[Path, list[Path]]:
    d = _dir(tmp_path)
    return d, gf.tiny_llama(d / "tiny-Q8_0.gguf", Q.Q8_0, split_max_tensors=8)


def _set_kv(path: Path, key: str, fmt: str, value: int) -> None:
    """Overwrite a fixed-size metadata value in place (same width: the layout stays valid)."""
    data = bytearray(path.read_bytes())
    at = data.index(gf.gstr(key)) + len(gf.gstr(key)) + 4
    struct.pack_into(fmt, data, at, value)
    path.write_bytes(bytes(data))


def test_a_missing_split_part_is_named(tmp_path):
    d, parts = _split(tmp_path)
    parts[1].unlink()
    code, msg, _ = _structure(d)
    assert code == 1 and "part(s) 2 of 3 missing" in msg, msg


def test_a_duplicated_split_part_is_named(tmp_path):
    d, parts = _split(tmp_path)
    _set_kv(parts[2], "split.no", "<H", 1)
    code, msg, _ = _structure(d)
    assert code == 1 and "split.no 1 is also in tiny-Q8_0-00002-of-00003.gguf" in msg, msg


def test_split_counts_must_agree_across_the_set(tmp_path):
    d, parts = _split(tmp_path)
    _set_kv(parts[0], "split.tensors.count", "<i", 20)
    _set_kv(parts[1], "split.count", "<H", 4)
    code, msg, _ = _structure(d)
    assert code == 1 and "split.tensors.count is 20 but the 3 parts present hold 21" in msg, msg
    assert "split.count is 4 but the name says 3" in msg, msg


def test_a_tensor_in_two_splits_is_named(tmp_path):
    d, parts = _split(tmp_path)
    first = parts[0].read_bytes()
    names = [t.name for t in read_gguf(parts[0], "p").tensors]
    second = [t.name for t in read_gguf(parts[1], "p").tensors]
    # rename (same length) a tensor of part 2 to one of part 1's names
    victim = next(n for n in second if any(len(n) == len(m) for m in names))
    twin = next(m for m in names if len(m) == len(victim))
    parts[1].write_bytes(parts[1].read_bytes().replace(gf.gstr(victim), gf.gstr(twin), 1))
    assert parts[0].read_bytes() == first
    code, msg, _ = _structure(d)
    assert code == 1 and "a tensor belongs to one part" in msg and twin in msg, msg


def test_split_metadata_without_a_split_name_is_named(tmp_path):
    d, parts = _split(tmp_path)
    for p in parts[1:]:
        p.unlink()
    parts[0].rename(d / "renamed.gguf")
    code, msg, _ = _structure(d)
    assert code == 1 and "finds the other parts by name" in msg, msg


# ------------------------------------------------------------------ architecture

@pytest.mark.parametrize("kw, phrase", [
    ({"block_count": 3}, "llama.block_count is 3 but blocks 2 have no blk.N.* tensors"),
    ({"block_count": 1}, "there are blk.N.* tensors for blocks 1"),
    ({"embedding_length": 48}, "llama.embedding_length is 48 but the token embedding is [64, 32]"),
    ({"tokenizer": False}, "no tokenizer"),
])
def test_architecture_metadata_disagreeing_with_the_tensors_is_named(tmp_path, kw, phrase):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", **kw)
    code, msg, _ = _structure(d)
    assert code == 1 and phrase in msg, msg


def test_a_vocabulary_that_does_not_fit_the_embedding_is_named(tmp_path):
    d = _dir(tmp_path)
    path = gf.tiny_llama(d / "t.gguf")[0]
    _set_kv(path, "tokenizer.ggml.tokens", "<I", gf.STRING)  # item type unchanged; now shrink the count
    data = bytearray(path.read_bytes())
    at = data.index(gf.gstr("tokenizer.ggml.tokens")) + len(gf.gstr("tokenizer.ggml.tokens")) + 8
    struct.pack_into("<Q", data, at, 31)  # 31 of 32 tokens: the 32nd string's bytes become the next key
    path.write_bytes(bytes(data))
    code, msg, _ = _structure(d)
    assert code == 1, msg  # the layout shifts: a named malformed-metadata error, never a crash


def test_an_unknown_architecture_is_a_note_not_a_failure(tmp_path):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", arch="notanarch")
    code, msg, report = _structure(d)
    assert code == 0, msg
    assert any("'notanarch' is unknown to the gguf package" in n for n in report.notes)


# ------------------------------------------------------------------ load pass

@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bf16"])
def test_the_load_pass_counts_nan_and_inf_in_float_tensors(tmp_path, dtype):
    a = np.linspace(-1, 1, 64, dtype=np.float32)
    a[3], a[40], a[41] = np.nan, np.inf, -np.inf
    d = _dir(tmp_path)
    if dtype == "bf16":
        gf.single_tensor(d / "w.gguf", gguf.quants.quantize(a, Q.BF16), raw_dtype=Q.BF16)
    else:
        gf.single_tensor(d / "w.gguf", a.astype(dtype))
    assert check(d, load=False).ok  # the structure is fine: only reading the values finds it
    report = check(d, device="cpu")
    assert report.exit_code == 1 and "1 NaN and 2 Inf values" in str(report.problems[0]), report.problems
    assert report.load.nonfinite["w"]["nan"] == 1


def test_numerics_dequantises_a_sample_and_finds_a_nan_scale(tmp_path):
    d = _dir(tmp_path)
    blocks = gf.q4_k_blocks(4, 256, np.random.default_rng(1))
    gf.single_tensor(d / "w.gguf", blocks, raw_dtype=Q.Q4_K)
    assert check(d, device="cpu", numerics=True).ok
    blocks = blocks.copy()
    blocks[2, 0:2] = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)  # block 2's scale d
    gf.single_tensor(d / "w.gguf", blocks, raw_dtype=Q.Q4_K)
    assert check(d, device="cpu").ok  # without --numerics quantised values are read, not decoded
    report = check(d, device="cpu", numerics=True)
    assert report.exit_code == 1 and "dequantised Q4_K blocks" in str(report.problems[0]), report.problems


@pytest.mark.cuda
def test_gguf_blocks_copy_to_the_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", Q.Q8_0)
    report = check(d, device="cuda")
    assert report.ok and report.load.peak_device_bytes > 0, report.problems


# ------------------------------------------------------------------ forward

def test_forward_without_llama_cpp_skips_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # absent, whether or not it is installed
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf")
    report = check(d, device="cpu", forward=True)
    assert report.ok and report.forward is None, report.problems
    assert any("llama-cpp-python is not installed" in n and "skipped" in n for n in report.notes)


def test_forward_runs_llama_cpp_and_catches_non_finite_logits(tmp_path):
    pytest.importorskip("llama_cpp")
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", Q.F16)
    report = check(d, device="cpu", forward=True)
    assert report.ok and report.forward.finite and report.forward.tokens == 8, report.problems
    path = d / "t.gguf"  # a NaN in the output norm: every logit NaN, though the structure is fine
    g = read_gguf(path, "t")
    norm = next(t for t in g.tensors if t.name == "output_norm.weight")
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, g.data_start + norm.offset, float("nan"))
    path.write_bytes(bytes(data))
    from weightsafe.loadcheck.gguf_forward import forward_gguf

    result, problems, _ = forward_gguf(path, "t.gguf", "cpu")
    assert result is not None and not result.finite and "non-finite logits" in str(problems[0]), problems


# ------------------------------------------------------------------ a real process: one line, exit code

def test_hostile_gguf_is_one_line_in_a_real_process(tmp_path):
    d = _write(tmp_path, gf.build([], [gf.info("w", [2**32, 2**32], 0, 0)], bytes(32)))
    code, out, err = _cli("check", "--dir", str(d), "--structure-only")
    assert code == 5 and err.count("\n") == 1 and "overflows int64" in err, (out, err)


def test_the_gguf_check_on_the_cpu_needs_no_torch(tmp_path):
    d = _dir(tmp_path)
    gf.tiny_llama(d / "t.gguf", Q.Q8_0)
    code = ("import sys; sys.modules['torch'] = None; sys.modules['safetensors'] = None; "
            "from weightsafe.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "check", "--dir", str(d), "--structure-only"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "1 weight file(s) (1 gguf)" in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, "-c", code, "check", "--dir", str(d), "--device", "cpu", "--numerics"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "load on cpu: 21 tensors" in proc.stdout, proc.stderr


# ------------------------------------------------------------------ pull and manifest create

GGUF_REPO, GGUF_COMMIT = "tiny-org/tiny-llama-GGUF", "9" * 40


@pytest.fixture
def gguf_repo(hub, tmp_path) -> dict[str, bytes]:
    """A GGUF repository as the hub serves them: a split Q4_K_M set of 3, a single Q8_0, a README."""
    src = _dir(tmp_path, "repo-src")
    gf.tiny_llama(src / "tiny-llama-Q4_K_M.gguf", Q.Q8_0, split_max_tensors=8)
    gf.tiny_llama(src / "tiny-llama-Q8_0.gguf", Q.Q8_0, seed=1)
    files = {p.name: p.read_bytes() for p in sorted(src.iterdir())}
    files["README.md"] = b"# tiny llama, GGUF\n"
    hub.state.add_repo(GGUF_REPO, GGUF_COMMIT, files)
    return files


def test_pull_include_fetches_exactly_the_chosen_split_set_and_it_checks(ws, gguf_repo, cache_dir):
    res = ws("pull", GGUF_REPO, "--include", "*Q4_K_M*")
    assert res.code == 0, res
    d = cache_dir / "models" / GGUF_REPO.replace("/", "--") / GGUF_COMMIT
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == [
        f"tiny-llama-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for name in os.listdir(d):
        if not name.startswith("."):
            assert (d / name).read_bytes() == gguf_repo[name]
    res = ws("check", "--dir", str(d), "--device", "cpu")
    assert res.code == 0 and "3 weight file(s) (3 gguf)" in res.out, res


def test_manifest_create_lists_the_gguf_files_with_their_lfs_sha256(ws, gguf_repo, tmp_path):
    import hashlib

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    out = tmp_path / "tiny.toml"
    res = ws("manifest", "create", GGUF_REPO, "-o", str(out))
    assert res.code == 0, res
    listed = {f["path"]: f for f in tomllib.loads(out.read_text())["files"]}
    assert sorted(listed) == sorted(gguf_repo)
    ggufs = sorted(n for n in gguf_repo if n.endswith(".gguf"))
    assert len(ggufs) == 4
    for name in ggufs:
        digests = {(d["alg"], d["source"]): d["hex"] for d in listed[name]["digests"]}
        assert digests[("sha256", "hub-lfs")] == hashlib.sha256(gguf_repo[name]).hexdigest(), name
        assert listed[name]["size"] == len(gguf_repo[name])
