"""What the structure pass learns about a checkpoint, and the problems it finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from ..errors import ExitCode

#: bytes per element, in safetensors' dtype names (torch names map onto these).
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
               "C64": 8, "C128": 16}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
CONFIG_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                 "float": "F32", "half": "F16"}


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as its file describes it, before any data is read."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    file: str

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a checkpoint; ``unsafe`` problems are exit 5, the rest exit 1."""

    file: str
    message: str
    tensor: str | None = None
    unsafe: bool = False

    @property
    def exit_code(self) -> int:
        return ExitCode.UNSAFE if self.unsafe else ExitCode.INTEGRITY

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.tensor}]" if self.tensor else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "tensor": self.tensor, "message": self.message, "unsafe": self.unsafe}


class StructureError(Exception):
    """A file's structure is unusable; carries the Problem to report."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


@dataclass
class Structure:
    """Tensors found per weight file, and what was wrong."""

    tensors: dict[str, list[TensorInfo]] = field(default_factory=dict)  # file -> tensors
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # files already reported unreadable: one error each
    gguf: object | None = None  # a gguf_check.GGUFStructure where the directory holds GGUF files

    def by_name(self, files: list[str] | None = None) -> dict[str, list[TensorInfo]]:
        out: dict[str, list[TensorInfo]] = {}
        for f, ts in self.tensors.items():
            if files is None or f in files:
                for t in ts:
                    out.setdefault(t.name, []).append(t)
        return out
