"""A corpus of hostile checkpoints, built in the tests: pickles that run code when loaded, zip
tricks, malformed safetensors headers. Each payload touches a canary file if it ever runs."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile


def _proto2_global(module: str, name: str, arg: str) -> bytes:
    """GLOBAL + REDUCE: module.name(arg)."""
    a = arg.encode()
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + struct.pack("<I", len(a)) + a + b"\x85R.")


def _stack_global_memo(module: str, name: str, arg: str) -> bytes:
    """Protocol 4: module and name pushed, memoized, fetched back with BINGET, then STACK_GLOBAL."""
    def u(s):
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return (b"\x80\x04" + u(module) + b"q\x00" + u(name) + b"q\x01" + b"0" + b"0"  # PUT, then POP both
            + b"h\x00h\x01\x93" + u(arg) + b"\x85R.")


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args

    def __call__(self, *args):  # only so that pickle accepts a _Reduce as the callable of another
        raise AssertionError("never called while pickling")


def payloads(canary: str) -> dict[str, bytes]:
    """name -> pickle bytes; every one creates ``canary`` when unpickled."""
    import builtins
    import functools
    import importlib
    import os

    touch = f"open({canary!r}, 'w').close()"
    nested = pickle.dumps(_Reduce(builtins.exec, (touch,)), protocol=2)
    return {
        "os.system": _proto2_global("os", "system", f"touch {canary}"),
        "posix.system": pickle.dumps(_Reduce(os.system, (f"touch {canary}",)), protocol=2),
        "builtins.eval": _proto2_global("builtins", "eval", touch),
        "builtins.exec": pickle.dumps(_Reduce(builtins.exec, (touch,)), protocol=4),
        "importlib.import_module": pickle.dumps(_Reduce(
            _Reduce(builtins.getattr, (_Reduce(importlib.import_module, ("os",)), "system")),
            (f"touch {canary}",)), protocol=4),
        "functools.partial": pickle.dumps(_Reduce(functools.partial(os.system, f"touch {canary}"), ()),
                                          protocol=4),
        "pickle.loads": pickle.dumps(_Reduce(pickle.loads, (nested,)), protocol=4),
        "stack_global_memo": _stack_global_memo("os", "system", f"touch {canary}"),
        "reduce_in_state_dict": pickle.dumps({"model.embed_tokens.weight": _Reduce(os.system, (f"touch {canary}",))},
                                             protocol=2),
    }


def torch_zip(pickle_bytes: bytes, extra: dict[str, bytes] | None = None, prefix: str = "archive") -> bytes:
    """A zip laid out as torch.save writes it, with ``pickle_bytes`` as data.pkl."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pickle_bytes)
        z.writestr(f"{prefix}/byteorder", b"little")
        z.writestr(f"{prefix}/version", b"3\n")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


# ------------------------------------------------------------------ safetensors

def safetensors_bytes(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def good_header() -> dict:
    return {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]}}


def malformed_safetensors() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a phrase the error must contain)."""
    data = bytes(24)
    h = good_header
    overlap = h()
    overlap["b"]["data_offsets"] = [12, 20]
    gap = h()
    gap["b"]["data_offsets"] = [20, 28]
    bad_dtype = h()
    bad_dtype["a"]["dtype"] = "F33"
    shape = h()
    shape["a"]["shape"] = [3, 2]
    neg = h()
    neg["a"]["shape"] = [-2, -2]
    past = h()
    past["b"]["data_offsets"] = [16, 24]
    return {
        "huge_length": (safetensors_bytes(h(), data, length=2**40), "implausible"),
        "length_past_eof": (safetensors_bytes(h(), data, length=5000), "past the end"),
        "short_file": (b"\x01\x02", "shorter than the 8-byte length prefix"),
        "not_json": (safetensors_bytes(b"{not json at all}", data), "not valid UTF-8 JSON"),
        "not_utf8": (safetensors_bytes(b"{\"\xff\": 1}", data), "not valid UTF-8 JSON"),
        "json_array": (safetensors_bytes(b"[1, 2]", data), "not a JSON object"),
        "overlap": (safetensors_bytes(overlap, data), "overlap"),
        "gap": (safetensors_bytes(gap, bytes(28)), "gap of 4 bytes"),
        "bad_dtype": (safetensors_bytes(bad_dtype, data), "unknown dtype 'F33'"),
        "shape_bytes_mismatch": (safetensors_bytes(shape, data), "needs 24"),
        "negative_shape": (safetensors_bytes(neg, data), "non-negative integers"),
        "trailing_bytes": (safetensors_bytes(h(), data + b"junk"), "4 trailing bytes"),
        "data_past_end": (safetensors_bytes(past, data[:20]), "holds only 20 data bytes"),
        "extra_field": (safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4],
                                                 "x": 1}}, bytes(4)), "exactly dtype, shape and data_offsets"),
    }


# ------------------------------------------------------------------ torch zip layouts two readers read differently

def torch_saved(state: dict | None = None) -> bytes:
    """A real ``torch.save`` archive (zip64 end records, data descriptors, aligned members)."""
    import torch

    buf = io.BytesIO()
    torch.save(state if state is not None else {"w": torch.arange(6, dtype=torch.float32)}, buf)
    return buf.getvalue()


def duplicate_data_pkl(first: bytes, last: bytes) -> bytes:
    """Two members named data.pkl: torch (miniz) reads the first, Python's zipfile the last."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")
        z.writestr("archive/data.pkl", first)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/version", b"3\n")
        z.writestr("archive/data.pkl", last)
    return buf.getvalue()


def _patch(blob: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _central_entries(blob: bytes):
    """(offset of each central directory entry, its name)."""
    pos, out = blob.index(b"PK\x01\x02"), []
    while blob[pos:pos + 4] == b"PK\x01\x02":
        nlen, elen, clen = struct.unpack_from("<HHH", blob, pos + 28)
        out.append((pos, blob[pos + 46:pos + 46 + nlen].decode()))
        pos += 46 + nlen + elen + clen
    return out


def _deflated(data: bytes, declared: int | None = None) -> bytes:
    """A torch-style zip whose data.pkl is deflated (declaring ``declared`` bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", b"3\n")
    blob = buf.getvalue()
    if declared is not None:
        for pos, name in _central_entries(blob):
            if name == "archive/data.pkl":
                blob = _patch(blob, pos + 24, "<I", declared)
        blob = _patch(blob, 22, "<I", declared)  # local header's size
    return blob


def ambiguous_archives(saved: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (archive, phrase the refusal names); each is a real torch.save archive bent one way."""
    import pickle as _pickle
    import zlib

    entries = dict((n.split("/", 1)[1], p) for p, n in _central_entries(saved))
    data_pkl = entries["data.pkl"]
    eocd = len(saved) - 22
    locator = eocd - 20
    benign = _pickle.dumps({}, protocol=2)
    data0 = struct.unpack_from("<I", saved, entries["data/0"] + 42)[0]
    data0 += 30 + sum(struct.unpack_from("<HH", saved, data0 + 26))
    bomb = zlib.compress(bytes(50_000_000))[2:-4]  # ~50 MB of zeros in ~50 kB of deflate
    return {
        "bad CRC in a storage": (_patch(saved, data0, "<f", 9.5), "fails its CRC check"),
        "bad CRC in data.pkl": (_patch(saved, data_pkl + 16, "<I", 0xDEADBEEF), "data descriptor disagrees"),
        "encrypted member": (_patch(saved, data_pkl + 8, "<H", 0x0809), "is encrypted"),
        "unknown method": (_patch(saved, data_pkl + 10, "<H", 12), "compression method 12"),
        "zip64 locator pointing elsewhere": (_patch(saved, locator + 8, "<Q", 0), "zip64 locator points at byte 0"),
        "end records disagree": (_patch(_patch(saved, eocd + 8, "<H", 3), eocd + 10, "<H", 3),
                                 "disagree on the member count"),
        "trailing bytes": (saved + b"\0" * 10, "no zip end record in the last 22 bytes"),
        "a second archive appended": (saved + torch_zip(benign), "bytes hidden between them"),
        "bytes before the first member": (b"PK\x03\x04" + bytes(60) + saved, "zip64 locator points at byte"),
        "zip bomb": (_bomb(bomb), "inflates past its declared"),
        "corrupt deflate": (_corrupt_deflate(), "corrupt deflate"),
        "member name not ASCII": (_rename(saved, "version", "versi\u00f6n"), "not ASCII"),
    }


def _bomb(deflate: bytes) -> bytes:
    """A data.pkl member declaring 100 bytes whose deflate stream inflates to ~50 MB."""
    blob = _deflated(b"x" * 100)
    start = blob.index(b"archive/data.pkl") + len("archive/data.pkl")
    local_csize = struct.unpack_from("<I", blob, 18)[0]
    body = blob[:start] + deflate + blob[start + local_csize:]
    shift = len(deflate) - local_csize
    body = _patch(body, 18, "<I", len(deflate))
    cd = body.index(b"PK\x01\x02")
    for pos, name in _central_entries(body):
        if name == "archive/data.pkl":
            body = _patch(body, pos + 20, "<I", len(deflate))
        else:
            body = _patch(body, pos + 42, "<I", struct.unpack_from("<I", body, pos + 42)[0] + shift)
    eocd = len(body) - 22
    return _patch(body, eocd + 16, "<I", cd)


def _corrupt_deflate() -> bytes:
    blob = bytearray(_deflated(b"y" * 1000))
    start = blob.index(b"archive/data.pkl") + len("archive/data.pkl")
    blob[start:start + 4] = b"\xff\xff\xff\xff"
    return bytes(blob)


def _rename(blob: bytes, old: str, new: str) -> bytes:
    """Rename a member in both headers (same byte length in latin-1)."""
    o, n = f"/{old}".encode(), f"/{new}".encode("latin-1")
    assert len(o) == len(n)
    return blob.replace(o, n)


# ------------------------------------------------------------------ opcodes applied to what the allowlist builds

def _u(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _put(i: int) -> bytes:
    return b"q" + bytes([i])


def _get(i: int) -> bytes:
    return b"h" + bytes([i])


_ODICT = _g("collections", "OrderedDict") + b")R"
_STORAGE = 3  # memo slots of the objects every bent pickle builds first
_TENSOR = 4
_TARGET = 20

#: the objects the allowlist lets a pickle build, each as the opcodes that push one
ALLOWLIST_OBJECTS: dict[str, bytes] = {
    "state dict": _get(0),
    "typed storage": _get(_STORAGE),
    "untyped storage": b"(" + _u("storage") + _g("torch.storage", "UntypedStorage") + _u("0") + _u("cpu")
                       + b"K\x10tQ",
    "tensor (_rebuild_tensor_v2)": _get(_TENSOR),
    "tensor (_rebuild_tensor_v3)": _g("torch._utils", "_rebuild_tensor_v3") + b"(" + _get(_STORAGE)
                                   + b"K\x00K\x04\x85K\x01\x85\x89" + _ODICT + _g("torch", "float32") + b"tR",
    "tensor (_rebuild_tensor)": _g("torch._utils", "_rebuild_tensor") + b"(" + _get(_STORAGE)
                                + b"K\x00K\x04\x85K\x01\x85tR",
    "parameter": _g("torch._utils", "_rebuild_parameter") + b"(" + _get(_TENSOR) + b"\x89" + _ODICT + b"tR",
    "torch.Size": _g("torch", "Size") + b"K\x04\x85\x85R",
    "dtype": _g("torch", "float32"),
    "storage type": _g("torch", "FloatStorage"),
    "UntypedStorage type": _g("torch.storage", "UntypedStorage"),
    "OrderedDict type": _g("collections", "OrderedDict"),
    "rebuild function": _g("torch._utils", "_rebuild_tensor_v2"),
    "rebuild function (v3)": _g("torch._utils", "_rebuild_tensor_v3"),
    "rebuild function (parameter)": _g("torch._utils", "_rebuild_parameter"),
}

#: attribute values that break every field the scan reads from a storage or tensor stand-in
_BENT = (b"}(" + _u("key") + b"]" + _u("nbytes") + b"K\x01\x85" + _u("dtype") + b"]" + _u("size") + b"]]a"
         + _u("stride") + b"])a" + _u("offset") + b"K\x01\x85" + _u("storage") + b"]u")
#: call arguments shaped like a rebuild call's, each field the wrong type (``dtype`` unhashable)
_HOSTILE_ARGS = b"(" + _get(_STORAGE) + b"K\x01\x85]]a])a\x89" + _ODICT + b"]t"

#: opcode -> the bytes that apply it to the object on top of the stack, leaving one object there
OPCODES: dict[str, bytes] = {
    "BUILD": _BENT + b"b",
    "BUILD (state, slotstate)": b"N" + _BENT + b"\x86b",
    "SETITEM": _u("size") + b"]s",
    "SETITEMS": b"(" + _u("size") + b"]" + _u("key") + b"]u",
    "APPEND": b"]a",
    "APPENDS": b"(]]e",
    "REDUCE (call)": _HOSTILE_ARGS + b"R",
    "REDUCE (call, no arguments)": b")R",
    "NEWOBJ": _HOSTILE_ARGS + b"\x81",
}


def bent_state_dict(kind: str, opcode: str) -> bytes:
    """A torch zip whose state dict holds a real-looking tensor ``w`` (FloatStorage, 4 elements), and
    then ``kind`` (an object the allowlist can build) with ``opcode`` applied to it, stored as ``t``.
    Bending a shared storage or the tensor ``w`` itself reaches ``w`` too."""
    storage = (b"(" + _u("storage") + _g("torch", "FloatStorage") + _u("0") + _u("cpu") + b"K\x04tQ"
               + _put(_STORAGE))
    tensor = (_g("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + b"K\x00K\x04\x85K\x01\x85\x89"
              + _ODICT + b"tR" + _put(_TENSOR))
    pkl = (b"\x80\x02" + _ODICT + _put(0) + b"(" + _u("w") + tensor + b"u"
           + _get(0) + _u("t") + ALLOWLIST_OBJECTS[kind] + _put(_TARGET) + OPCODES[opcode] + b"s" + b".")
    return torch_zip(pkl, {"archive/data/0": bytes(16)})
