"""Parse and validate a safetensors header without reading tensor data.

Checked, each with its own message: a sane length prefix, a header inside the file, UTF-8 JSON
object, known dtypes, non-negative integer shapes, byte length = dtype size x elements, and data
offsets that tile the data section exactly: no gap, no overlap, nothing past the end and no
trailing bytes. These are the conditions under which a loader reads what the header says.
"""

from __future__ import annotations

import os
import struct
from math import prod

from . import strict_json
from .model import DTYPE_SIZES, Problem, StructureError, TensorInfo

MAX_HEADER = 100_000_000  # the safetensors library's own limit


def read_header(path: str | os.PathLike, label: str) -> tuple[list[TensorInfo], dict]:
    """Tensors (sorted by offset) and ``__metadata__`` of one file; raises StructureError."""

    def fail(msg: str, tensor: str | None = None):
        raise StructureError(Problem(label, msg, tensor))

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            fail(f"not a safetensors file: {size} bytes, shorter than the 8-byte length prefix")
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER:
            fail(f"header length {n} is implausible (limit {MAX_HEADER})")
        if 8 + n > size:
            fail(f"header length {n} runs past the end of the {size}-byte file")
        raw = fh.read(n)
    try:
        header = strict_json.loads(raw)
    except strict_json.StrictJSONError as e:
        fail(f"header is not valid UTF-8 JSON ({e})")
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("__metadata__ must map strings to strings")
    data_len = size - 8 - n
    tensors = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            fail("entry must have exactly dtype, shape and data_offsets", name)
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            fail(f"unknown dtype {dtype!r}", name)
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            fail(f"shape {shape!r} is not a list of non-negative integers", name)
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            fail(f"data_offsets {offsets!r} must be [begin, end] with 0 <= begin <= end", name)
        expected = prod(shape) * DTYPE_SIZES[dtype]
        if expected >= 2**64 or any(o >= 2**64 for o in offsets):
            fail(f"shape {shape!r:.80} or data_offsets overflow 64 bits", name)
        if offsets[1] - offsets[0] != expected:
            fail(f"holds {offsets[1] - offsets[0]} bytes but {dtype} x {shape} needs {expected}", name)
        tensors.append((offsets[0], offsets[1], TensorInfo(name, dtype, tuple(shape), expected, label)))
    tensors.sort(key=lambda t: (t[0], t[1]))
    position = 0
    for begin, end, t in tensors:
        if begin < position:
            fail(f"data_offsets [{begin}, {end}] overlap the previous tensor (ends at {position})", t.name)
        if begin > position:
            fail(f"a gap of {begin - position} bytes before this tensor's data (offset {begin})", t.name)
        position = end
    if position > data_len:
        fail(f"tensor data ends at {position} but the file holds only {data_len} data bytes")
    if position < data_len:
        fail(f"{data_len - position} trailing bytes after the last tensor")
    return [t for _, _, t in tensors], metadata

