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

import pickle
import pickletools
import re
import zipfile
from math import prod

from .model import DTYPE_SIZES, Problem, StructureError, TensorInfo

#: The globals a plain torch state dict needs.
STORAGE_DTYPES = {"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16",
                  "BFloat16Storage": "BF16", "LongStorage": "I64", "IntStorage": "I32",
                  "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL"}
REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"}
TORCH_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
ALLOWED: set[tuple[str, str]] = (
    {("collections", "OrderedDict"), ("torch", "Size")}
    | {("torch", s) for s in STORAGE_DTYPES}
    | {("torch._utils", r) for r in REBUILDERS}
    | {("torch", d) for d in TORCH_DTYPES}
)
MEMBER_RE = re.compile(r"^(?P<prefix>[^/]+)/(data\.pkl|version|byteorder|\.format_version|\.storage_alignment|"
                       r"\.data/version|\.data/serialization_id|data/(?P<key>\d+))$")
CALLING_OPS = {"GLOBAL", "STACK_GLOBAL", "INST"}
FORBIDDEN_OPS = {"EXT1": "extension registry lookup", "EXT2": "extension registry lookup",
                 "EXT4": "extension registry lookup", "OBJ": "OBJ opcode (calls an object built on the stack)"}
_UNKNOWN = object()


def _unsafe(label: str, msg: str) -> StructureError:
    return StructureError(Problem(label, msg, unsafe=True))


def scan_pickle(data: bytes, label: str) -> list[tuple[str, str]]:
    """Every (module, name) the pickle would resolve; raises StructureError(unsafe) on a bad one."""
    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    found: list[tuple[str, str]] = []
    refused: list[str] = []
    try:
        ops = list(pickletools.genops(data))
    except Exception as e:  # malformed: refuse rather than guess
        raise _unsafe(label, f"the pickle is malformed ({type(e).__name__}: {e})") from None
    end = ops[-1][2] + 1 if ops else 0
    if len(data) > end:
        raise _unsafe(label, f"{len(data) - end} bytes follow the pickle's STOP (a second pickle?)")
    for op, arg, pos in ops:
        name = op.name
        if name in FORBIDDEN_OPS:
            raise _unsafe(label, f"refused: {FORBIDDEN_OPS[name]} at byte {pos}")
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            _check_global(module, attr, found, refused)
        elif name == "STACK_GLOBAL":
            if len(stack) < 2 or not all(isinstance(x, str) for x in stack[-2:]):
                raise _unsafe(label, f"refused: STACK_GLOBAL at byte {pos} with operands that are not "
                                     f"plain strings (an obfuscated import)")
            _check_global(stack[-2], stack[-1], found, refused)
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
    if refused:
        names = ", ".join(dict.fromkeys(refused))
        raise _unsafe(label, f"refused global{'s' if len(set(refused)) > 1 else ''} {names}: not in the "
                             f"allowlist of what a state dict needs (nothing was unpickled)")
    return found


def _check_global(module: str, name: str, found: list, refused: list) -> None:
    if (module, name) in ALLOWED:
        found.append((module, name))
    else:
        refused.append(f"{module}.{name}")


def check_archive(zf: zipfile.ZipFile, label: str) -> tuple[str, dict[str, int]]:
    """The archive's prefix and its storage sizes by key; refuses anything torch.save never writes."""
    prefixes, storages = set(), {}
    for info in zf.infolist():
        m = MEMBER_RE.match(info.filename)
        if not m or ".." in info.filename.split("/"):
            raise _unsafe(label, f"unexpected archive member {info.filename!r} (not written by torch.save)")
        prefixes.add(m.group("prefix"))
        if m.group("key") is not None:
            storages[m.group("key")] = info.file_size
    if len(prefixes) != 1:
        raise _unsafe(label, f"archive members under several top-level folders: {sorted(prefixes)}")
    prefix = prefixes.pop()
    if f"{prefix}/data.pkl" not in zf.namelist():
        raise _unsafe(label, "no data.pkl in the archive")
    return prefix, storages


class _Storage:
    def __init__(self, dtype: str, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _StubUnpickler(pickle.Unpickler):
    """Builds inert stand-ins: a tensor becomes (storage key, offset, size, stride)."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:  # unreachable after scan_pickle, kept as a second wall
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module == "collections":
            return dict
        if module == "torch._utils":
            if name == "_rebuild_parameter":
                return lambda data, *a, **k: data
            return lambda storage, offset, size, stride, *a, **k: _Tensor(storage, offset, size, stride)
        if name == "Size":
            return tuple
        return STORAGE_DTYPES.get(name) or TORCH_DTYPES.get(name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if dtype not in DTYPE_SIZES or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"bad storage record {pid!r:.80}")
        return _Storage(dtype, str(key), numel)


def read_bin(path, label: str) -> list[TensorInfo]:
    """Scan a torch zip checkpoint and return its tensors; raises StructureError."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise _unsafe(label, "not a zip checkpoint (legacy torch pickle format): refused unscanned") from None
    except OSError as e:
        raise StructureError(Problem(label, f"cannot read: {e}")) from None
    with zf:
        prefix, storages = check_archive(zf, label)
        data = zf.read(f"{prefix}/data.pkl")
        scan_pickle(data, label)
        import io

        try:
            obj = _StubUnpickler(io.BytesIO(data)).load()
        except Exception as e:
            raise _unsafe(label, f"the pickle does not read as a state dict ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise StructureError(Problem(label, f"holds a {type(obj).__name__}, not a state dict"))
    tensors = []
    for name, t in obj.items():
        if not isinstance(name, str) or not isinstance(t, _Tensor) or not isinstance(t.storage, _Storage):
            raise StructureError(Problem(label, f"entry {name!r:.60} is not a tensor"))
        s = t.storage
        itemsize = DTYPE_SIZES[s.dtype]
        if storages.get(s.key) is None:
            raise StructureError(Problem(label, f"storage data/{s.key} is missing from the archive", name))
        if storages[s.key] != s.numel * itemsize:
            raise StructureError(Problem(label, f"storage data/{s.key} holds {storages[s.key]} bytes, "
                                                f"{s.numel} x {s.dtype} needs {s.numel * itemsize}", name))
        if len(t.size) != len(t.stride) or any(d < 0 for d in t.size):
            raise StructureError(Problem(label, f"bad size {t.size} / stride {t.stride}", name))
        extent = t.offset + sum((d - 1) * st for d, st in zip(t.size, t.stride)) + 1 if prod(t.size) else t.offset
        if t.offset < 0 or extent > s.numel:
            raise StructureError(Problem(label, f"view reaches element {extent} of a {s.numel}-element storage", name))
        tensors.append(TensorInfo(name, s.dtype, t.size, prod(t.size) * itemsize, label))
    return tensors
