"""Static safety scan of PyTorch ``.bin`` checkpoints, and their structure, with nothing unpickled.

A pickle can run any code when loaded. Before anything else touches a ``.bin`` we (1) check the
zip archive has exactly the members ``torch.save`` writes (one ``data.pkl``, no extra pickles,
no paths outside the archive), (2) walk the pickle's opcodes while simulating its stack, so the
module and name of every global are known even when they come from ``STACK_GLOBAL`` and the memo,
and refuse any global outside a short allowlist (what a plain state dict needs), and (3) read the
tensor names, dtypes and shapes with an unpickler whose ``find_class`` returns inert stand-ins for
allowlisted names and raises for anything else, so no real global is ever resolved.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
from math import prod

from .model import DTYPE_SIZES, Problem, StructureError, TensorInfo
from .zipreader import ZipArchive, ZipRefused, open_archive

#: The globals a plain torch state dict needs.
STORAGE_DTYPES = {"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16",
                  "BFloat16Storage": "BF16", "LongStorage": "I64", "IntStorage": "I32",
                  "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL",
                  "ComplexFloatStorage": "C64", "ComplexDoubleStorage": "C128"}
REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter"}
TORCH_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
                "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "uint16": "U16", "uint32": "U32",
                "uint64": "U64", "complex64": "C64", "complex128": "C128"}
ALLOWED: set[tuple[str, str]] = (
    {("collections", "OrderedDict"), ("torch", "Size"), ("torch.storage", "UntypedStorage")}
    | {("torch", s) for s in STORAGE_DTYPES}
    | {("torch._utils", r) for r in REBUILDERS}
    | {("torch", d) for d in TORCH_DTYPES}
)
MEMBER_RE = re.compile(r"^(?P<prefix>[^/]+)/(data\.pkl|version|byteorder|\.format_version|\.storage_alignment|"
                       r"\.data/version|\.data/serialization_id|data/(?P<key>\d+))$")
FORBIDDEN_OPS = {"EXT1": "extension registry lookup", "EXT2": "extension registry lookup",
                 "EXT4": "extension registry lookup", "OBJ": "OBJ opcode (calls an object built on the stack)"}
_UNKNOWN = object()
#: Limits on what a pickle may make the scan do; a state dict of 100k tensors stays far below them.
MAX_PICKLE = 256 * 1024 * 1024
MAX_OPS = 2_000_000
MAX_MEMO = 2_000_000
MAX_DEPTH = 1000


def _unsafe(label: str, msg: str) -> StructureError:
    return StructureError(Problem(label, msg, unsafe=True))


def scan_pickle(data: bytes, label: str) -> list[tuple[str, str]]:
    """Every (module, name) the pickle would resolve; raises StructureError(unsafe) on a bad one."""
    found = pickle_globals(data, label)
    refused = [f"{m}.{n}" for m, n in found if (m, n) not in ALLOWED]
    if refused:
        names = ", ".join(dict.fromkeys(refused))
        raise _unsafe(label, f"refused global{'s' if len(set(refused)) > 1 else ''} {names}: not in the "
                             f"allowlist of what a state dict needs (nothing was unpickled)")
    return found


def pickle_globals(data: bytes, label: str) -> list[tuple[str, str]]:
    """Every (module, name) the pickle would import, found by walking its opcodes on a simulated
    stack; raises StructureError(unsafe) for what cannot be known statically or breaks a limit."""
    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    found: list[tuple[str, str]] = []
    end = 0
    for count, (op, arg, pos) in enumerate(_ops(data, label)):
        if count >= MAX_OPS:
            raise _unsafe(label, f"the pickle has more than {MAX_OPS} opcodes: limit hit")
        if len(memo) > MAX_MEMO or len(marks) > MAX_DEPTH or len(stack) > MAX_MEMO:
            raise _unsafe(label, f"the pickle nests deeper than {MAX_DEPTH} or memoizes more than {MAX_MEMO} "
                                 f"objects: limit hit")
        name = op.name
        end = pos + 1
        if name in FORBIDDEN_OPS:
            raise _unsafe(label, f"refused: {FORBIDDEN_OPS[name]} at byte {pos}")
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
        elif name == "STACK_GLOBAL":
            if len(stack) < 2 or not all(isinstance(x, str) for x in stack[-2:]):
                raise _unsafe(label, f"refused: STACK_GLOBAL at byte {pos} with operands that are not "
                                     f"plain strings (an obfuscated import)")
            found.append((stack[-2], stack[-1]))
        # simulate the stack so STACK_GLOBAL's operands (often memo lookups) are known
        if name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1] if stack else _UNKNOWN
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else _UNKNOWN
            continue
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg, _UNKNOWN))
            continue
        before = op.stack_before
        if pickletools.markobject in before:
            if not marks:
                raise _unsafe(label, f"malformed pickle: {name} at byte {pos} without a MARK")
            del stack[marks.pop():]
            before = [b for b in before if b not in (pickletools.markobject, pickletools.stackslice)]
        if len(before) > len(stack):
            raise _unsafe(label, f"malformed pickle: stack underflow at {name}, byte {pos}")
        if before:
            del stack[len(stack) - len(before):]
        if name == "MARK":
            marks.append(len(stack))
            continue
        for _ in op.stack_after:
            is_text = name.endswith("UNICODE") or name in ("STRING", "BINSTRING", "SHORT_BINSTRING")
            stack.append(arg if is_text and isinstance(arg, str) else _UNKNOWN)
    if len(data) > end:
        raise _unsafe(label, f"{len(data) - end} bytes follow the pickle's STOP (a second pickle?)")
    return found


def _ops(data: bytes, label: str):
    """pickletools.genops, with a malformed pickle refused rather than guessed at."""
    try:
        yield from pickletools.genops(data)
    except Exception as e:
        raise _unsafe(label, f"the pickle is malformed ({type(e).__name__}: {str(e)[:100]})") from None


def check_archive(archive: ZipArchive, label: str) -> tuple[str, dict[str, int]]:
    """The archive's prefix and its storage sizes by key; refuses anything torch.save never writes."""
    prefixes, storages = set(), {}
    for info in archive.members:
        m = MEMBER_RE.match(info.name)
        if not m or ".." in info.name.split("/"):
            raise _unsafe(label, f"unexpected archive member {info.name!r} (not written by torch.save)")
        prefixes.add(m.group("prefix"))
        if m.group("key") is not None:
            storages[m.group("key")] = info.size
    if len(prefixes) != 1:
        raise _unsafe(label, f"archive members under several top-level folders: {sorted(prefixes)}")
    prefix = prefixes.pop()
    if archive.member(f"{prefix}/data.pkl") is None:
        raise _unsafe(label, "no data.pkl in the archive")
    return prefix, storages


class _Inert:
    """Base of every stand-in the stub unpickler builds. Opcodes act on objects, so each stand-in's
    type decides what each opcode may do to it: no ``__dict__`` (``__slots__``), and BUILD (which
    sets attributes, or anything a ``__setstate__`` does) is refused. ``torch.save`` never writes a
    BUILD on a storage, a tensor built by these rebuilders or a function; one that does would change,
    after the scan read them, the very fields the scan judged (or the scanner's own functions).
    SETITEM(S)/APPEND(S) fail by type (no item assignment, no ``append``/``extend``), calls by
    ``__call__``; every failure is a refusal, never a crash."""

    __slots__ = ()
    what = "object"

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"BUILD on a {self.what} (torch.save never writes one)")


class _Storage(_Inert):
    __slots__ = ("dtype", "key", "nbytes")
    what = "storage"

    def __init__(self, dtype: str | None, key: str, nbytes: int):
        self.dtype, self.key, self.nbytes = dtype, key, nbytes


class _Tensor(_Inert):
    __slots__ = ("storage", "offset", "size", "stride", "dtype")
    what = "tensor"

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.dtype = dtype if dtype is not None else getattr(storage, "dtype", None)


class _Function(_Inert):
    """An allowlisted torch function: a fresh, attribute-less object per lookup, so a pickle can
    neither BUILD on it nor reach the scanner's own functions through it."""

    __slots__ = ("_call",)
    what = "function"

    def __init__(self, call):
        self._call = call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)


class _StateDict(dict):
    """An OrderedDict stand-in; ``state_dict()`` pickles its ``_metadata`` with BUILD, ignored here
    (a plain dict of tensors is all the scan reads; SETITEM(S) fill it as they fill the real one)."""

    def __setstate__(self, state):
        pass


def _rebuild_v3(storage, offset, size, stride, requires_grad=False, hooks=None, dtype=None, *rest):
    return _Tensor(storage, offset, size, stride, dtype)


def _rebuild(storage, offset, size, stride, *rest, **kwargs):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *rest, **kwargs):
    return data


REBUILD = {"_rebuild_parameter": _rebuild_parameter, "_rebuild_tensor_v3": _rebuild_v3}
_UNTYPED = "untyped"


class _StubUnpickler(pickle.Unpickler):
    """Builds inert stand-ins: a tensor becomes (storage key, offset, size, stride, dtype)."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:  # unreachable after scan_pickle, kept as a second wall
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module == "collections":
            return _StateDict
        if module == "torch.storage":
            return _UNTYPED
        if module == "torch._utils":
            return _Function(REBUILD.get(name, _rebuild))
        if name == "Size":
            return tuple
        return STORAGE_DTYPES.get(name) or TORCH_DTYPES.get(name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if (not isinstance(dtype, str) or (dtype != _UNTYPED and dtype not in DTYPE_SIZES)
                or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0):
            raise pickle.UnpicklingError(f"bad storage record {pid!r:.80}")
        if dtype == _UNTYPED:
            return _Storage(None, str(key), numel)
        return _Storage(dtype, str(key), numel * DTYPE_SIZES[dtype])


def read_bin(path, label: str) -> list[TensorInfo]:
    """Scan a torch zip checkpoint and return its tensors; raises StructureError."""
    try:
        archive = open_archive(path)
        prefix, storages = check_archive(archive, label)
        pkl = archive.member(f"{prefix}/data.pkl")
        if pkl.size > MAX_PICKLE:
            raise _unsafe(label, f"data.pkl is {pkl.size} bytes (limit {MAX_PICKLE}): limit hit")
        data = archive.read(pkl)
        for m in archive.members:  # storages (data/N) are CRC-checked by the load pass, which reads them
            if m is not pkl and m.name.split("/")[1:2] != ["data"]:
                archive.check_crc(m)
    except ZipRefused as e:
        raise _unsafe(label, f"refused archive: {e}") from None
    except OSError as e:
        raise StructureError(Problem(label, f"cannot read: {e}")) from None
    scan_pickle(data, label)
    try:
        obj = _StubUnpickler(io.BytesIO(data)).load()
    except Exception as e:
        raise _unsafe(label, f"the pickle does not read as a state dict ({type(e).__name__}: {e})"[:300]) from None
    return _tensors(obj, storages, label)


def _tensors(obj, storages: dict[str, int], label: str) -> list[TensorInfo]:
    if not isinstance(obj, dict):
        raise StructureError(Problem(label, f"holds a {type(obj).__name__}, not a state dict"))
    tensors = []
    for name, t in obj.items():
        if not isinstance(name, str):  # never repr'd: a key can be a tuple nested past the recursion limit
            raise StructureError(Problem(label, f"a key of type {type(name).__name__} (not a tensor name)"))
        if (not isinstance(t, _Tensor) or not isinstance(t.storage, _Storage)
                or not isinstance(t.dtype, str) or t.dtype not in DTYPE_SIZES or not isinstance(t.offset, int)
                or not all(isinstance(d, int) for d in t.size + t.stride)):
            raise StructureError(Problem(label, f"entry {name!r:.60} is not a tensor"))
        s = t.storage
        itemsize = DTYPE_SIZES[t.dtype]
        if storages.get(s.key) is None:
            raise StructureError(Problem(label, f"storage data/{s.key} is missing from the archive", name))
        if storages[s.key] != s.nbytes:
            raise StructureError(Problem(label, f"storage data/{s.key} holds {storages[s.key]} bytes, "
                                                f"its record says {s.nbytes}", name))
        if len(t.size) != len(t.stride) or any(d < 0 for d in t.size + t.stride):
            raise StructureError(Problem(label, f"bad size {t.size} / stride {t.stride}", name))
        extent = t.offset + sum((d - 1) * st for d, st in zip(t.size, t.stride)) + 1 if prod(t.size) else t.offset
        if t.offset < 0 or extent * itemsize > s.nbytes:
            raise StructureError(Problem(label, f"view reaches element {extent} of a {s.nbytes}-byte storage",
                                         name))
        tensors.append(TensorInfo(name, t.dtype, t.size, prod(t.size) * itemsize, label))
    return tensors
