"""The GGUF load pass: every tensor's bytes read once from the mapped file, at disk speed.

Runs only on files the structure pass accepted, so every tensor lies inside its file. Float
tensors (F32, F16, BF16, F64) are checked for NaN/Inf as they are read: the exponent bits of each
value are masked into a reused buffer and their maximum compared with the all-ones exponent (two
vectorised passes over each chunk, no per-value work in Python, no copy of the tensor). Other
types are read with a byte-wise maximum. Chunks are bounded (16 MiB), so memory stays flat
whatever the file's size. With ``numerics``, a bounded, evenly spread sample of each quantised
tensor's blocks is dequantised by the ``gguf`` package's reference code and must be finite (a
NaN or Inf block scale makes every value of its block non-finite). On CUDA the data sections
are also copied to the device in large transfers through a pinned buffer, to prove they read.
"""

from __future__ import annotations

import mmap
import time
from math import prod
from pathlib import Path

import numpy as np

from .device import LoadStats
from .gguf_header import GGUFFile
from .model import Problem

CHUNK = 16 << 20
SAMPLE_BLOCKS = 64  # per quantised tensor, with --numerics
DEVICE_CHUNK = 256 << 20
#: float types: (unsigned view, sign mask, all-ones exponent)
FLOATS = {"F32": (np.uint32, 0x7FFF_FFFF, 0x7F80_0000), "F16": (np.uint16, 0x7FFF, 0x7C00),
          "BF16": (np.uint16, 0x7FFF, 0x7F80), "F64": (np.uint64, 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000)}
VALUES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def load_gguf(directory: Path, files: dict[str, GGUFFile], device: str, numerics: bool,
              stats: LoadStats) -> list[Problem]:
    """Read every tensor of every file into ``stats``; a Problem per unreadable file and per
    tensor holding non-finite values."""
    problems: list[Problem] = []
    scratch = np.empty(CHUNK, dtype=np.uint8)
    no_dequantiser: set[str] = set()
    copier = _DeviceCopier(device) if device.startswith("cuda") else None
    for label, g in files.items():
        start = time.perf_counter()
        buf = data = raw = None
        try:
            with open(directory / label, "rb") as fh:
                buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                buf.madvise(mmap.MADV_SEQUENTIAL)
            data = np.frombuffer(buf, dtype=np.uint8)
            if len(data) != g.size:
                raise ValueError(f"the file is now {len(data)} bytes, {g.size} when its header was checked")
            for t in g.tensors:
                raw = data[g.data_start + t.offset:g.data_start + t.offset + t.nbytes]
                bad = _read_tensor(raw, t.type_name, scratch)
                if bad is None and numerics and t.type_name not in FLOATS and t.block_elements > 1:
                    bad = _sample(raw, t.type_id, t.type_name, t.block_bytes, no_dequantiser)
                if bad is not None:
                    stats.nonfinite[t.name] = {"file": label, **bad}
                    where = f" in {bad['sampled_blocks']} dequantised {t.type_name} blocks" if "sampled_blocks" in bad else ""
                    problems.append(Problem(label, f"{bad['nan']} NaN and {bad['inf']} Inf values{where}", t.name))
                stats.tensors += 1
                numel = prod(t.dims)
                stats.parameters += numel
                stats.bytes += t.nbytes
                stats.dtypes[t.type_name] = stats.dtypes.get(t.type_name, 0) + numel
            if copier is not None:
                copier.copy(data[g.data_start:])
        except (OSError, ValueError, RuntimeError) as e:  # a file that shrank, an I/O error, a device error
            problems.append(Problem(label, f"failed to read on {device}: {type(e).__name__}: {str(e)[:200]}"))
        finally:
            data = raw = None
            if buf is not None:
                try:
                    buf.close()
                except BufferError:  # a view still alive (a traceback's frame): the mapping closes with it
                    pass
        stats.seconds += time.perf_counter() - start
    if copier is not None:
        stats.peak_device_bytes = max(stats.peak_device_bytes or 0, copier.peak())
    for kind in sorted(no_dequantiser):
        stats.notes.append(f"--numerics: the gguf package has no dequantiser for {kind}: its bytes were read, "
                           "its values not sampled")
    return problems


def _read_tensor(raw: np.ndarray, type_name: str, scratch: np.ndarray) -> dict | None:
    """Read every byte of ``raw``; for float types, {nan, inf} counts if any value is not finite."""
    if type_name not in FLOATS:
        for i in range(0, len(raw), CHUNK):
            raw[i:i + CHUNK].max()
        return None
    view, mask, exponent = FLOATS[type_name]
    width = np.dtype(view).itemsize
    nonfinite = False
    for i in range(0, len(raw), CHUNK):
        chunk = raw[i:i + CHUNK]
        if not len(chunk):
            continue
        bits = chunk.view(view)
        masked = np.bitwise_and(bits, view(mask), out=scratch[:len(chunk)].view(view))
        if masked.max() >= exponent:
            nonfinite = True
    if not nonfinite:
        return None
    bits = raw.view(view)
    nan = inf = 0
    for i in range(0, len(bits), CHUNK // width):  # exact counts, only for a tensor already known bad
        masked = bits[i:i + CHUNK // width] & view(mask)
        nan += int(np.count_nonzero(masked > exponent))
        inf += int(np.count_nonzero(masked == exponent))
    return {"nan": nan, "inf": inf}


def _sample(raw: np.ndarray, type_id: int, type_name: str, block_bytes: int, missing: set[str]) -> dict | None:
    """Dequantise up to SAMPLE_BLOCKS evenly spread blocks; {nan, inf, sampled} if any is not finite."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    n_blocks = len(raw) // block_bytes
    if not n_blocks:
        return None
    picks = np.unique(np.linspace(0, n_blocks - 1, min(SAMPLE_BLOCKS, n_blocks)).astype(np.int64))
    blocks = raw[:n_blocks * block_bytes].reshape(n_blocks, block_bytes)[picks]
    try:
        with np.errstate(all="ignore"):
            values = dequantize(np.ascontiguousarray(blocks), GGMLQuantizationType(type_id))
    except NotImplementedError:
        missing.add(type_name)
        return None
    finite = np.isfinite(values)
    if finite.all():
        return None
    return {"nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum()),
            "sampled_blocks": int(len(picks))}


class _DeviceCopier:
    """Copies host bytes to one device buffer through a pinned host buffer, DEVICE_CHUNK at a time."""

    def __init__(self, device: str):
        import torch

        self.torch, self.device = torch, device
        torch.cuda.reset_peak_memory_stats(device)
        self.host = torch.empty(DEVICE_CHUNK, dtype=torch.uint8, pin_memory=True)
        self.target = torch.empty(DEVICE_CHUNK, dtype=torch.uint8, device=device)

    def copy(self, data: np.ndarray) -> None:
        host = self.host.numpy()
        for i in range(0, len(data), DEVICE_CHUNK):
            chunk = data[i:i + DEVICE_CHUNK]
            host[:len(chunk)] = chunk
            self.target[:len(chunk)].copy_(self.host[:len(chunk)])  # synchronous: the host buffer is reused
        self.torch.cuda.synchronize(self.device)

    def peak(self) -> int:
        return int(self.torch.cuda.max_memory_allocated(self.device))
