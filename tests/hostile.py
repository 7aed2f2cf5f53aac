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
