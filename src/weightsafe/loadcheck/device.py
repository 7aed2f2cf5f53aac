"""The load pass: every shard onto the device, one at a time, freed before the next.

Uses ``safetensors.safe_open(device=...)`` and ``torch.load(weights_only=True, mmap=True)`` (the
latter only for files the pickle scan passed). Measures load throughput and peak device memory,
and compares what loaded with what the headers promised.

Speed (profiled on 1 GB shards): on the CPU both loaders return lazy mmap views, so every
byte is read with one read-only reduction instead of a copy (a clone paid twice the page
faults, allocating and zeroing a second copy). A ``.bin`` goes to a GPU by mmap on the host
then ``.to(device)`` per tensor; ``torch.load(map_location=cuda)`` was 5x slower. Nothing
syncs the host per tensor: ``--numerics`` takes min/max of each tensor on the device (NaN
propagates, Inf is an extreme), fetches them once per shard, and counts NaN and Inf exactly
only in tensors that are not all finite.
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
    return cpu_free_bytes()


def cpu_free_bytes() -> int | None:
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
        tensors = None
        extremes: list[tuple[str, object, object]] = []  # (name, tensor, its [min, max] on the device)
        try:
            tensors = _load_file(torch, directory / name, device)
            seen = 0
            for tname, t in tensors:
                seen += 1
                problems += _compare(name, tname, t, promised.get(tname))
                stats.tensors += 1
                stats.parameters += t.numel()
                stats.bytes += t.numel() * t.element_size()
                key = str(t.dtype).replace("torch.", "")
                stats.dtypes[key] = stats.dtypes.get(key, 0) + t.numel()
                if numerics and t.is_floating_point() and t.numel():
                    extremes.append((tname, t, _extremes(torch, t)))  # reads every byte, no host sync
                elif not cuda:  # mmap'd tensors are lazy: read every byte, as a server will
                    _touch(torch, t)
                del t
            if extremes:
                _count_nonfinite(torch, name, extremes, stats)
            if cuda:
                torch.cuda.synchronize(device)
            if seen != len(promised):
                problems.append(Problem(name, f"loaded {seen} tensors, the header lists {len(promised)}"))
        except Exception as e:  # torch/safetensors errors are many types; each is a broken shard
            problems.append(Problem(name, f"failed to load on {device}: {type(e).__name__}: {str(e)[:200]}"))
        finally:
            tensors = None
            extremes = []
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
        stats.seconds += time.perf_counter() - start
    if cuda:
        stats.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    for tname, info in stats.nonfinite.items():
        problems.append(Problem(info["file"], f"{info['nan']} NaN and {info['inf']} Inf values", tname))
    return stats, problems


def _touch(torch, t) -> None:
    """Read every byte of a (lazily mapped) tensor once, without copying it."""
    if t.numel():
        t.reshape(-1).view(torch.uint8).max()


def _extremes(torch, t):
    """[min, max] of ``t`` as one small tensor on its device: NaN if any value is NaN, and
    +-Inf when one is infinite. Queued on the device; nothing is brought back yet."""
    try:
        lo, hi = torch.aminmax(t)
    except RuntimeError:  # dtypes without min/max kernels (float8 on some builds): exact, slower
        bad = (~torch.isfinite(t)).sum()
        return torch.stack([bad, bad]).to(torch.float32) * float("inf")
    return torch.stack([lo, hi]).to(torch.float32)


def _count_nonfinite(torch, file: str, extremes: list, stats: LoadStats) -> None:
    """One transfer per shard brings every tensor's extremes back; only a tensor whose extremes
    are not finite has its NaN and Inf counted (then exactly)."""
    values = torch.stack([e for _n, _t, e in extremes]).cpu()
    finite = torch.isfinite(values).all(dim=1).tolist()
    for ok, (tname, t, _e) in zip(finite, extremes):
        if not ok:
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            if nan or inf:
                stats.nonfinite[tname] = {"file": file, "nan": nan, "inf": inf}


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
    # Map on the host, then copy each tensor over: map_location=cuda was the .bin bottleneck.
    state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    try:
        for key, t in state.items():
            yield key, (t if device == "cpu" else t.to(device))
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
