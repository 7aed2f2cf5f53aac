"""Parse and validate a safetensors header without reading tensor data.

Checked, each with its own message: a sane length prefix, a header inside the file, UTF-8 JSON
object, known dtypes, non-negative integer shapes, byte length = dtype size x elements, and data
offsets that tile the data section exactly: no gap, no overlap, nothing past the end and no
trailing bytes. These are the conditions under which a loader reads what the header says.

The reference reader (the ``safetensors`` crate: serde_json into ``Option<HashMap<String,
String>>`` for ``__metadata__``, ``Vec<usize>`` shapes, ``(usize, usize)`` offsets, then
``validate``) is the bar: whatever it refuses, this refuses too, so the structure pass never
passes a file the load pass then fails. It may be stricter (unknown entry keys), never looser.
"""

from __future__ import annotations

import os
import struct

from .strict_json import StrictJSONError, loads as strict_loads
from .model import DTYPE_SIZES, Problem, StructureError, TensorInfo

MAX_HEADER = 100_000_000  # the safetensors library's own limit
USIZE = 2**64  # the reference reads shapes, offsets and byte counts as 64-bit usize
#: the dtypes the reference reader knows (its ``Dtype`` enum) that torch can also hold. ``C128`` is a
#: torch dtype (pickles may hold it) but no safetensors dtype: the library refuses the header.
SAFETENSORS_DTYPES = {k: v for k, v in DTYPE_SIZES.items() if k != "C128"}


def _serde_int(text: str) -> int | float:
    """serde_json reads ``-0`` as the float -0.0, which no usize field accepts."""
    return -0.0 if text == "-0" else int(text)


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
        header = strict_loads(raw, parse_int=_serde_int)
    except StrictJSONError as e:
        fail(f"header is not valid UTF-8 JSON ({e})")
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:  # absent or null: the reference's Option is None
        metadata = {}
    if not isinstance(metadata, dict):
        fail(f"__metadata__ must be an object mapping strings to strings, not {_json_type(metadata)}")
    if not all(isinstance(v, str) for v in metadata.values()):
        fail("__metadata__ must map strings to strings")
    data_len = size - 8 - n
    tensors = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            fail("entry must have exactly dtype, shape and data_offsets", name)
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
            fail(f"unknown dtype {dtype!r:.40}", name)
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            fail(f"shape {shape!r:.80} is not a list of non-negative integers", name)
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            fail(f"data_offsets {offsets!r:.80} must be [begin, end] with 0 <= begin <= end", name)
        elements = 1
        for d in shape:  # the reference multiplies left to right and fails at the first overflow,
            elements *= d  # so [2**40, 2**40, 0] is refused although its product is 0
            if d >= USIZE:
                fail(f"shape {shape!r:.80}: a dimension of 2^64 or more (the reference reads 64-bit sizes)", name)
            if elements >= USIZE:
                fail(f"shape {shape!r:.80}: the element count would overflow 64 bits", name)
        expected = elements * SAFETENSORS_DTYPES[dtype]
        if expected >= USIZE or any(o >= USIZE for o in offsets):
            fail(f"shape {shape!r:.80} or data_offsets overflow 64 bits", name)
        if offsets[1] - offsets[0] != expected:
            fail(f"holds {offsets[1] - offsets[0]} bytes but {dtype} x {shape!r:.80} needs {expected}", name)
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



def _json_type(value) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
