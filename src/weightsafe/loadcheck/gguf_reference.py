"""A differential against the reference reader: llama.cpp's ``gguf`` package (``GGUFReader``) must
see the same tensors (name, type, shape, absolute data offset, size) as weightsafe's own pass.

Two readers that disagree on where a tensor lies are what a parser-differential attack needs (the
checked bytes are not the served bytes), so a disagreement is refused (exit 5), as the zip
reader refuses ``.bin`` archives it and torch would read differently. The reference runs only
after the structure pass accepted the file (lengths bounded, counts limited), and any exception
it raises is a refusal, never a crash.

One change to the reference, for time and memory only: ``GGUFReader`` walks metadata arrays
one element at a time, building numpy views for each (16 s and 700 MB for a 262k-token
vocabulary). Here an array of fixed-size items is one view, and an array of strings is walked
by its length prefixes without a view per string. Both advance by exactly the bytes the
reference would, and the header, key/value framing, alignment, tensor infos and data offset are
all its own unmodified code. ``tests/test_gguf.py`` checks the two agree on every test file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .gguf_header import GGUFFile
from .model import Problem


def _reference_class():
    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    class BulkArrayReader(GGUFReader):
        def _get_field_parts(self, orig_offs, raw_type):
            if raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            offs = orig_offs + 12
            itype = GGUFValueType(raw_itype[0])
            nptype = self.gguf_scalar_to_np.get(itype)
            if nptype is not None:
                values = self._get(offs, nptype, alen[0])
                if len(values) != alen[0]:
                    raise ValueError("array runs past the end of the file")
                return 12 + int(values.nbytes), [raw_itype, alen, values], [2], [GGUFValueType.ARRAY, itype]
            if itype == GGUFValueType.STRING:
                view = memoryview(self.data)
                for _ in range(int(alen[0])):
                    offs += 8 + struct.unpack_from("<Q", view, offs)[0]
                if offs > len(self.data):
                    raise ValueError("string array runs past the end of the file")
                block = self._get(orig_offs + 12, np.uint8, offs - orig_offs - 12)
                return offs - orig_offs, [raw_itype, alen, block], [], [GGUFValueType.ARRAY, itype]
            return super()._get_field_parts(orig_offs, raw_type)  # arrays of arrays: its own recursion

    return BulkArrayReader


def reference_view(path: Path) -> tuple[int, int, list[tuple[str, int, tuple[int, ...], int, int]]]:
    """(alignment, data offset, [(name, type id, dims, absolute offset, bytes)]) as the reference
    reader sees ``path``. Raises whatever the reference raises."""
    reader = _reference_class()(str(path))  # its memmap closes when the last view of it goes
    tensors = [(t.name, int(t.tensor_type), tuple(int(d) for d in t.shape), int(t.data_offset), int(t.n_bytes))
               for t in reader.tensors]
    return int(reader.alignment), int(reader.data_offset), tensors


def compare(path: Path, g: GGUFFile) -> list[Problem]:
    """Problems (unsafe) where the reference reader fails on, or disagrees with, a file the
    structure pass accepted."""
    try:
        alignment, data_offset, theirs = reference_view(path)
    except Exception as e:  # noqa: BLE001 - the reference on hostile input: any failure is a refusal
        return [Problem(g.label, f"the reference reader (gguf.GGUFReader) fails on a file the structure pass "
                                 f"accepts ({type(e).__name__}: {str(e)[:160]}): refused", unsafe=True)]
    ours = [(t.name, t.type_id, t.dims, g.data_start + t.offset, t.nbytes) for t in g.tensors]
    if (alignment, data_offset) != (g.alignment, g.data_start):
        return [Problem(g.label, f"the reference reader puts the data section at {data_offset} (alignment "
                                 f"{alignment}), the structure pass at {g.data_start} (alignment {g.alignment}): "
                                 "refused", unsafe=True)]
    if len(theirs) != len(ours):
        return [Problem(g.label, f"the reference reader sees {len(theirs)} tensors, the structure pass "
                                 f"{len(ours)}: refused", unsafe=True)]
    for mine, ref in zip(ours, theirs):
        if mine != ref:
            return [Problem(g.label, f"the reference reader reads this tensor as {_show(ref)}, the structure pass "
                                     f"as {_show(mine)}: refused", mine[0], unsafe=True)]
    return []


def _show(t: tuple) -> str:
    name, type_id, dims, offset, nbytes = t
    return f"{name!r} type {type_id} dims {list(dims)} at {offset} ({nbytes} bytes)"
