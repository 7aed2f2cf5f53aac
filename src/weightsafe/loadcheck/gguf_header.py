"""Parse and validate one GGUF file's header, metadata and tensor infos without reading tensor data.

GGUF parsers have a history of memory-safety bugs reached through crafted headers (huge string
or array lengths, offsets past the end, dimension products that overflow, too many dimensions),
so this reader trusts no number it reads: every length is checked against the bytes that remain
before anything is read or allocated, and every count against what the whole file could hold.

The rules are llama.cpp's (``ggml/src/gguf.cpp``), so a file that passes is one llama.cpp would
open: versions 2 and 3, unique keys, ``general.alignment`` a u32 power of two, tensor names
unique and under 64 bytes, 1-4 dimensions whose product fits in int64, a ggml type from the
``gguf`` package's table with rows a multiple of its block size, and tensor data that tiles the
aligned data section in order (each tensor padded to the alignment). Two kinds of failure:
malformed (exit 1: truncated, unknown type, misaligned) and crafted (exit 5: numbers no writer
produces and only an attack on a parser needs: lengths beyond the whole file, overflowing
products, more than 4 dimensions, a zero llama.cpp divides by, limits hit).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from math import prod

from .model import Problem, StructureError

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_NAME = 63  # llama.cpp's GGML_MAX_NAME (64) holds the terminating NUL
MAX_DIMS = 4  # GGML_MAX_DIMS
INT64_MAX = 2**63 - 1
#: Limits that bound time and memory whatever a header claims (real models: ~60 keys, a few
#: thousand tensors, tokenizer arrays of up to ~800k strings). Hitting one is exit 5.
MAX_KV = 65_536
MAX_TENSORS = 1_000_000
MAX_ELEMENTS = 4_000_000  # strings and arrays inside arrays, per file: each costs a step of work
MAX_DEPTH = 8  # arrays of arrays

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
SCALARS = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
           BOOL: "<B", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
TYPE_NAMES = {UINT8: "u8", INT8: "i8", UINT16: "u16", INT16: "i16", UINT32: "u32", INT32: "i32", FLOAT32: "f32",
              BOOL: "bool", STRING: "string", ARRAY: "array", UINT64: "u64", INT64: "i64", FLOAT64: "f64"}
MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, the smallest value
MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dimension, type, offset


def ggml_types() -> dict[int, tuple[str, int, int]]:
    """type id -> (name, elements per block, bytes per block), from the ``gguf`` package's
    ``GGML_QUANT_SIZES`` (llama.cpp's own table, K-quants and IQ types included)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): (t.name, block, size) for t, (block, size) in GGML_QUANT_SIZES.items()}


@dataclass(frozen=True)
class GGUFArray:
    """An array value: its item type and length (values are validated, not kept)."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GGUFTensor:
    """A tensor info: ``dims`` in GGUF order (``ne[0]``, the row length, first); ``offset`` from
    the start of the data section."""

    name: str
    type_id: int
    type_name: str
    dims: tuple[int, ...]
    offset: int
    nbytes: int
    block_elements: int
    block_bytes: int


@dataclass
class GGUFFile:
    """What one GGUF file's header says, once it has been validated."""

    label: str
    version: int
    size: int
    alignment: int
    data_start: int
    metadata: dict[str, object] = field(default_factory=dict)  # key -> int/float/bool/str/GGUFArray
    types: dict[str, int] = field(default_factory=dict)  # key -> value type
    tensors: list[GGUFTensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Cursor:
    """A bounded reader over the mapped file: nothing is read before its length is checked."""

    def __init__(self, buf, size: int, label: str):
        self.buf, self.size, self.label, self.pos = buf, size, label, 0
        self.elements = 0

    def fail(self, msg: str, crafted: bool = False, tensor: str | None = None):
        raise StructureError(Problem(self.label, msg, tensor, unsafe=crafted))

    def need(self, n: int, what: str, tensor: str | None = None) -> None:
        if n > self.size:
            self.fail(f"{what} claims {n} bytes, more than the whole {self.size}-byte file (crafted)", True, tensor)
        if n > self.size - self.pos:
            self.fail(f"{what} at offset {self.pos} runs past the end of the file ({n} bytes needed, "
                      f"{self.size - self.pos} left: truncated?)", tensor=tensor)

    def unpack(self, fmt: str, n: int, what: str):
        self.need(n, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return self.unpack("<I", 4, what)

    def u64(self, what: str) -> int:
        return self.unpack("<Q", 8, what)

    def string(self, what: str, max_len: int | None = None, tensor: str | None = None) -> str:
        n = self.u64(f"{what}'s length")
        self.need(n, what, tensor)
        if max_len is not None and n > max_len:
            self.fail(f"{what} is {n} bytes; llama.cpp's limit is {max_len}", tensor=tensor)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})", tensor=tensor)

    def count(self, n: int, per_item: int, what: str) -> None:
        """``n`` items of at least ``per_item`` bytes each must fit in what is left."""
        if n * per_item > self.size:
            self.fail(f"{what} {n} is more than the whole {self.size}-byte file could hold (crafted)", True)
        if n * per_item > self.size - self.pos:
            self.fail(f"{what} {n} runs past the end of the file (truncated?)")


def read_gguf(path: str | os.PathLike, label: str) -> GGUFFile:
    """Validate one GGUF file's header; raises StructureError with the first problem found."""
    types = ggml_types()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 24:
            raise StructureError(Problem(label, f"a GGUF file of {size} bytes: shorter than its 24-byte header"))
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, size, label), types)


def _parse(c: _Cursor, types: dict[int, tuple[str, int, int]]) -> GGUFFile:
    if bytes(c.buf[:4]) != MAGIC:
        c.fail("not a GGUF file (no GGUF magic)")
    c.pos = 4
    version = c.u32("version")
    if version & 0xFFFF == 0 and version:
        c.fail(f"version field {version:#x}: a big-endian GGUF file (not supported)")
    if version not in VERSIONS:
        c.fail(f"GGUF version {version} (supported: 2 and 3)")
    n_tensors, n_kv = c.u64("tensor count"), c.u64("key-value count")
    c.count(n_kv, MIN_KV_BYTES, "key-value count")
    c.count(n_tensors, MIN_TENSOR_INFO_BYTES, "tensor count")
    if n_kv > MAX_KV:
        c.fail(f"key-value count {n_kv}: limit hit (at most {MAX_KV})", True)
    if n_tensors > MAX_TENSORS:
        c.fail(f"tensor count {n_tensors}: limit hit (at most {MAX_TENSORS})", True)
    g = GGUFFile(c.label, version, c.size, DEFAULT_ALIGNMENT, 0)
    for _ in range(n_kv):
        key = c.string("a metadata key")
        if key in g.metadata:
            c.fail(f"duplicate metadata key {key!r}")
        vtype = c.u32(f"{key}'s value type")
        g.types[key] = vtype
        g.metadata[key] = _value(c, vtype, key, 0, g)
    _alignment(c, g)
    seen: set[str] = set()
    for i in range(n_tensors):
        t = _tensor_info(c, g, types, i)
        if t.name in seen:
            c.fail("duplicate tensor name", tensor=t.name)
        seen.add(t.name)
        g.tensors.append(t)
    g.data_start = -(-c.pos // g.alignment) * g.alignment
    _data_section(c, g)
    return g


def _value(c: _Cursor, vtype: int, key: str, depth: int, g: GGUFFile):
    if vtype in SCALARS:
        fmt = SCALARS[vtype]
        value = c.unpack(fmt, struct.calcsize(fmt), f"{key}'s value")
        if vtype == BOOL:
            if value > 1:
                c.fail(f"{key}: a bool of value {value} (must be 0 or 1)")
            return bool(value)
        return value
    if vtype == STRING:
        return c.string(f"{key}'s value")
    if vtype != ARRAY:
        c.fail(f"{key}: unknown value type {vtype}")
    item = c.u32(f"{key}'s array item type")
    n = c.u64(f"{key}'s array length")
    if item in SCALARS:
        width = struct.calcsize(SCALARS[item])
        c.count(n, width, f"{key}: array length")
        if item == BOOL and bytes(c.buf[c.pos:c.pos + n]).translate(None, b"\x00\x01"):
            c.fail(f"{key}: a bool array holds a value other than 0 or 1")
        c.pos += n * width
    elif item in (STRING, ARRAY):
        c.count(n, 8 if item == STRING else 12, f"{key}: array length")
        c.elements += n
        if c.elements > MAX_ELEMENTS:
            c.fail(f"{key}: more than {MAX_ELEMENTS} strings and arrays inside arrays: limit hit", True)
        if item == ARRAY:
            if depth + 1 >= MAX_DEPTH:
                c.fail(f"{key}: arrays nested {MAX_DEPTH} deep: limit hit", True)
            if depth == 0:
                g.notes.append(f"{c.label}: {key} is an array of arrays (GGUF allows it; llama.cpp's reader "
                               "refuses the type)")
        for _ in range(n):
            if item == STRING:
                n_bytes = c.u64(f"a string in {key}")
                c.need(n_bytes, f"a string in {key}")
                try:
                    bytes(c.buf[c.pos:c.pos + n_bytes]).decode("utf-8")
                except UnicodeDecodeError as e:
                    c.fail(f"{key}: a string at offset {c.pos} is not valid UTF-8 ({e.reason})")
                c.pos += n_bytes
            else:
                _value(c, ARRAY, key, depth + 1, g)
    else:
        c.fail(f"{key}: unknown array item type {item}")
    return GGUFArray(item, n)


def _alignment(c: _Cursor, g: GGUFFile) -> None:
    if "general.alignment" not in g.metadata:
        return
    if g.types["general.alignment"] != UINT32:
        # llama.cpp reads it with gguf_get_val_u32, which aborts on any other type
        c.fail(f"general.alignment is a {TYPE_NAMES.get(g.types['general.alignment'], '?')}, not a u32 "
               "(llama.cpp aborts on it)", True)
    a = g.metadata["general.alignment"]
    if not a or a & (a - 1):
        c.fail(f"general.alignment {a} is not a power of two")
    g.alignment = a


def _tensor_info(c: _Cursor, g: GGUFFile, types: dict[int, tuple[str, int, int]], i: int) -> GGUFTensor:
    name = c.string(f"tensor {i}'s name", MAX_NAME)
    n_dims = c.u32("a dimension count")
    if n_dims > MAX_DIMS:
        c.fail(f"{n_dims} dimensions (at most {MAX_DIMS}: readers keep them in fixed arrays)", True, name)
    if n_dims == 0:
        c.fail("no dimensions (1 to 4 expected)", tensor=name)
    dims = tuple(c.u64("a dimension") for _ in range(n_dims))
    ne = dims + (1,) * (MAX_DIMS - n_dims)
    if any(d > INT64_MAX for d in ne):
        c.fail(f"dimensions {list(dims)} overflow int64", True, name)
    if any(d == 0 for d in ne[1:]):
        c.fail(f"dimensions {list(dims)}: a zero after the first (llama.cpp divides by it)", True, name)
    if (INT64_MAX // ne[1] <= ne[0] or INT64_MAX // ne[2] <= ne[0] * ne[1]
            or INT64_MAX // ne[3] <= ne[0] * ne[1] * ne[2]):
        c.fail(f"dimensions {list(dims)}: the element count overflows int64", True, name)
    type_id = c.u32("a ggml type")
    if type_id not in types:
        c.fail(f"unknown ggml type {type_id}", tensor=name)
    type_name, block, block_bytes = types[type_id]
    if ne[0] % block:
        c.fail(f"{type_name} rows of {ne[0]} elements: not a multiple of its block size {block}", tensor=name)
    nbytes = ne[0] // block * block_bytes * prod(ne[1:])
    offset = c.u64("a tensor offset")
    if offset % g.alignment:
        c.fail(f"data offset {offset} is not a multiple of the alignment {g.alignment}", tensor=name)
    if offset + nbytes >= 2**64:
        c.fail(f"data offset {offset} + {nbytes} bytes overflow 64 bits", True, name)
    return GGUFTensor(name, type_id, type_name, dims, offset, nbytes, block, block_bytes)


def _data_section(c: _Cursor, g: GGUFFile) -> None:
    """Tensor data must tile the data section in order, each tensor padded to the alignment
    (llama.cpp refuses anything else), and the file ends with the last tensor's data."""
    if g.data_start > c.size and g.tensors:
        c.fail(f"the data section starts at {g.data_start}, past the end of the {c.size}-byte file (truncated?)")
    expected = 0
    for t in g.tensors:
        if t.offset < expected:
            c.fail(f"data offset {t.offset} overlaps the previous tensor's data (it ends at {expected})",
                   tensor=t.name)
        if t.offset > expected:
            c.fail(f"a gap of {t.offset - expected} bytes before this tensor's data (llama.cpp requires tensor "
                   "data in order, each padded to the alignment)", tensor=t.name)
        end = g.data_start + t.offset + t.nbytes
        if end > c.size:
            c.fail(f"data [{g.data_start + t.offset}, {end}) runs past the end of the {c.size}-byte file "
                   "(truncated?)", tensor=t.name)
        expected = t.offset + -(-t.nbytes // g.alignment) * g.alignment
    if g.tensors and c.size > g.data_start + expected:
        c.fail(f"{c.size - g.data_start - expected} trailing bytes after the last tensor's data")
    if not g.tensors and c.size > g.data_start:
        c.fail(f"{c.size - g.data_start} trailing bytes after the header of a file with no tensors")
