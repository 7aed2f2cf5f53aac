"""The GGUF structure pass: each file's header (``gguf_header``), then the reference reader's
differential (``gguf_reference``), then the files as models: split sets and architecture
(``gguf_model``). No tensor data is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .gguf_header import GGUFFile, read_gguf
from .gguf_model import GGUFModel, check_architecture, group
from .gguf_reference import compare
from .model import Problem, StructureError, TensorInfo


@dataclass
class GGUFStructure:
    """What the GGUF structure pass learned: headers by file, models, tensors, problems, notes."""

    files: dict[str, GGUFFile] = field(default_factory=dict)
    models: list[GGUFModel] = field(default_factory=list)
    tensors: dict[str, list[TensorInfo]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)


def need_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UsageError("checking GGUF files needs the gguf package (llama.cpp's reader): "
                         "pip install 'weightsafe[load]'") from None


def check_gguf_files(directory: Path, names: list[str]) -> GGUFStructure:
    """Validate every named GGUF file, refuse any the reference reader reads differently, then
    check split sets and architectures (only over files that passed, so one broken file is one
    error)."""
    need_gguf()
    s = GGUFStructure()
    for name in names:
        try:
            g = read_gguf(directory / name, name)
        except StructureError as e:
            s.problems.append(e.problem)
            s.failed.add(name)
            continue
        except (OSError, ValueError) as e:  # ValueError: mmap of a file that shrank under us
            s.problems.append(Problem(name, f"cannot read: {e}"))
            s.failed.add(name)
            continue
        differential = compare(directory / name, g)
        if differential:
            s.problems += differential
            s.failed.add(name)
            continue
        s.files[name] = g
        s.notes += g.notes
        s.tensors[name] = [TensorInfo(t.name, t.type_name, t.dims, t.nbytes, name) for t in g.tensors]
    models, problems = group(s.files)
    s.problems += problems
    for m in models:
        if any(p in s.failed for p in m.parts):
            continue
        arch_problems, arch_notes = check_architecture(m, s.files)
        s.problems += arch_problems
        s.notes += arch_notes
    s.models = models
    return s
