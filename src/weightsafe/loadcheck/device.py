"""The load pass: every shard onto the device, one at a time, freed before the next.

Uses ``safetensors.safe_open(device=...)`` and ``torch.load(weights_only=True, mmap=True)`` (the
latter only for files the pickle scan passed). Measures load throughput and peak device memory,
and compares what loaded with what the headers promised.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .model import Problem, TensorInfo
from .formats import OTHER, SAFETENSORS, sniff
from .zipreader import open_archive

TORCH_TO_ST = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
               "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
               "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "uint16": "U16", "uint32": "U32",
               "uint64": "U64", "complex64": "C64", "complex128": "C128"}


@dataclass
class LoadStats:
    device: str
    tensors: int = 0
    parameters: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> parameters
    peak_device_bytes: int | None = None
    free_device_bytes: int | None = None
    nonfinite: dict[str, dict] = field(default_factory=dict)  # tensor -> {nan, inf}
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0

    @property
    def fits(self) -> bool | None:
        return None if self.free_device_bytes is None else self.bytes <= self.free_device_bytes

    def to_dict(self) -> dict:
        return {"device": self.device, "tensors": self.tensors, "parameters": self.parameters,
                "bytes": self.bytes, "seconds": round(self.seconds, 4),
                "throughput_bytes_per_s": round(self.throughput), "dtypes": self.dtypes,
                "peak_device_bytes": self.peak_device_bytes, "free_device_bytes": self.free_device_bytes,
                "fits": self.fits, "nonfinite": self.nonfinite, "notes": self.notes}


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError("the load pass needs torch and safetensors: pip install 'weightsafe[load]' "
                         "(or run with --structure-only)") from None
    return torch


def pick_device(spec: str) -> tuple[str, list[str]]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string, and notes for the user."""
    torch = _torch()
    spec = spec.lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda:0", []
        return "cpu", ["no CUDA GPU is available: the load check ran on the CPU"]
    if spec == "cpu":
        return "cpu", []
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA GPU is available here (try --device auto or cpu)")
        index = int(spec.split(":", 1)[1]) if ":" in spec and spec.split(":", 1)[1].isdigit() else 0
        if ":" in spec and not spec.split(":", 1)[1].isdigit():
            raise UsageError(f"--device {spec}: expected cuda:N")
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) here")
        return f"cuda:{index}", []
    raise UsageError(f"--device {spec}: use auto, cpu, cuda or cuda:N")


def _free_bytes(torch, device: str) -> int | None:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def load_all(directory: Path, files: list[str], expected: dict[str, list[TensorInfo]], device: str,
             numerics: bool = False) -> tuple[LoadStats, list[Problem]]:
    """Load each file in turn on ``device``; compare every tensor with its header's promise."""
    torch = _torch()
    stats = LoadStats(device)
    problems: list[Problem] = []
    cuda = device.startswith("cuda")
    stats.free_device_bytes = _free_bytes(torch, device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for name in files:
        promised = {t.name: t for t in expected.get(name, [])}
        start = time.perf_counter()
        try:
            tensors = _load_file(torch, directory / name, device)
            seen = 0
            for tname, t in tensors:
                if not cuda:  # mmap'd tensors are lazy: read every byte, as a server will
                    t = t.clone()
                seen += 1
                problems += _compare(name, tname, t, promised.get(tname))
                stats.tensors += 1
                stats.parameters += t.numel()
                stats.bytes += t.numel() * t.element_size()
                key = str(t.dtype).replace("torch.", "")
                stats.dtypes[key] = stats.dtypes.get(key, 0) + t.numel()
                if numerics and t.is_floating_point():
                    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                    if nan or inf:
                        stats.nonfinite[tname] = {"file": name, "nan": nan, "inf": inf}
                del t
            if cuda:
                torch.cuda.synchronize(device)
            if seen != len(promised):
                problems.append(Problem(name, f"loaded {seen} tensors, the header lists {len(promised)}"))
        except Exception as e:  # torch/safetensors errors are many types; each is a broken shard
            problems.append(Problem(name, f"failed to load on {device}: {type(e).__name__}: {str(e)[:200]}"))
        finally:
            tensors = None
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
        stats.seconds += time.perf_counter() - start
    if cuda:
        stats.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    for tname, info in stats.nonfinite.items():
        problems.append(Problem(info["file"], f"{info['nan']} NaN and {info['inf']} Inf values", tname))
    return stats, problems


def _load_file(torch, path: Path, device: str):
    """Yield (name, tensor) for one file, on the device."""
    if sniff(path) in (SAFETENSORS, OTHER):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=device) as f:
            for key in f.keys():
                yield key, f.get_tensor(key)
        return
    archive = open_archive(path)  # torch.load(mmap=True) skips CRCs: check every member first
    for member in archive.members:
        archive.check_crc(member)
    state = torch.load(str(path), map_location=device, weights_only=True, mmap=True)
    try:
        for key, t in state.items():
            yield key, t
    finally:
        state = None


def _compare(file: str, name: str, t, promised: TensorInfo | None) -> list[Problem]:
    if promised is None:
        return [Problem(file, "loaded a tensor the header does not list", name)]
    dtype = TORCH_TO_ST.get(str(t.dtype).replace("torch.", ""), str(t.dtype))
    if dtype != promised.dtype or tuple(t.shape) != promised.shape:
        return [Problem(file, f"loaded as {dtype} {list(t.shape)}, the header says {promised.dtype} "
                              f"{list(promised.shape)}", name)]
    return []
