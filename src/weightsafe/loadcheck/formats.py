"""Which files of a model directory a loader could read, and in which format, decided by their
first bytes, never by their names.

``torch.load`` does not look at a file's extension: it reads a zip archive if the file starts
with a zip local header, a tar archive if tarfile accepts it, and otherwise unpickles it. An index
may point at any file name (``.ckpt``, ``.BIN``, none). So every file is sniffed, and every file
that ``torch.load`` or ``pickle.load`` could run is scanned, whatever it is called.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from .model import Problem

SAFETENSORS, TORCH_ZIP, TORCH_TAR, PICKLE, OTHER = "safetensors", "torch-zip", "torch-tar", "pickle", "other"
GGUF = "gguf"
#: names that hold pickles by convention even when their first bytes do not say so (protocol 0/1
#: pickles have no magic): torch.load would unpickle them, so they are scanned as pickles.
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".th", ".tar"}
#: pickles a loader reads for something other than weights (training state): denylist + warning,
#: not the strict weight allowlist. Anything not named here, or named by an index, is a weight file.
AUXILIARY = re.compile(r"^(training_args|optimizer|scheduler|scaler|rng_state)([-_.][\w.-]*)?\.(bin|pt|pth)$",
                       re.IGNORECASE)


def sniff(path: str | os.PathLike) -> str:
    """The format a loader would read ``path`` as, from its first 512 bytes."""
    with open(path, "rb") as fh:
        head = fh.read(512)
        size = os.fstat(fh.fileno()).st_size
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TORCH_TAR
    if len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5:
        return PICKLE
    if head[:4] == b"GGUF":  # before safetensors: a GGUF header can also read as a length prefix and "{"
        return GGUF
    if len(head) >= 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return SAFETENSORS
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return PICKLE
    return OTHER


# ------------------------------------------------------------------ the name must agree with the bytes
#: What the loader a file's name selects can read. transformers (``load_state_dict``), vLLM and
#: TGI pick the reader by the name: ``.safetensors`` -> safetensors, ``.bin``/``.pt``/``.pth`` ->
#: ``torch.load``. A file whose bytes are another format passes neither this check's reader for its
#: content nor the consuming loader: it must be refused, not passed. One line per suffix.
#: (OTHER under ``.safetensors``: unrecognised bytes, which the header reader then refuses by name.)
READ_AS: dict[str, tuple[str, frozenset[str]]] = {
    ".safetensors": ("safetensors", frozenset({SAFETENSORS, OTHER})),
    ".bin": ("torch.load", frozenset({TORCH_ZIP, TORCH_TAR, PICKLE})),
    ".pt": ("torch.load", frozenset({TORCH_ZIP, TORCH_TAR, PICKLE})),
    ".pth": ("torch.load", frozenset({TORCH_ZIP, TORCH_TAR, PICKLE})),
    ".gguf": ("llama.cpp's GGUF reader", frozenset({GGUF})),
}
FORMAT_NAMES = {SAFETENSORS: "a safetensors file", TORCH_ZIP: "a torch zip archive", TORCH_TAR: "a torch tar archive",
                PICKLE: "a bare pickle", GGUF: "a GGUF file", OTHER: "no format a loader reads"}


def name_disagrees(name: str, fmt: str) -> str | None:
    """Why a loader choosing by ``name`` cannot read content of format ``fmt``, or None."""
    suffix = Path(name).suffix.lower()
    if suffix not in READ_AS or fmt in READ_AS[suffix][1]:
        return None
    reader, _ = READ_AS[suffix]
    return (f"named {suffix}, so a loader reads it with {reader}, but its bytes are "
            f"{FORMAT_NAMES.get(fmt, fmt)}: the load would fail (rename it to match its format)")


@dataclass(frozen=True)
class Candidate:
    """A file the load check must look at: its path relative to the model directory and its format."""

    name: str
    format: str
    auxiliary: bool = False


def inside(path: Path, directory: Path) -> bool:
    """``path`` resolves (through every symlink) inside ``directory``, or, for a Hugging Face cache
    snapshot, inside the repository's ``blobs`` folder its symlinks are meant to point at."""
    real = path.resolve()
    roots = [directory.resolve()]
    if directory.resolve().parent.name == "snapshots":
        roots.append(directory.resolve().parent.parent / "blobs")
    return any(real == r or r in real.parents for r in roots)


def scan_directory(directory: Path, named: list[str], weight_map_targets: set[str]) -> tuple[list[Candidate], list[Problem]]:
    """Every loadable file among ``named`` (relative paths), sniffed; a symlink leaving the model
    directory is a problem, never followed."""
    out, problems = [], []
    for name in sorted(set(named)):
        path = directory / name
        if path.is_symlink() and not inside(path, directory):
            problems.append(Problem(name, "a symlink leaving the model directory (refused, not followed)",
                                    unsafe=True))
            continue
        if not path.is_file():
            continue
        try:
            fmt = sniff(path)
        except OSError as e:
            problems.append(Problem(name, f"cannot read: {e}"))
            continue
        if fmt == OTHER and name not in weight_map_targets and Path(name).suffix.lower() != ".safetensors":
            continue
        if fmt == GGUF and Path(name).suffix.lower() in PICKLE_SUFFIXES:
            # torch.load reads a file that is neither zip nor tar as a pickle: a GGUF header can be both
            problems.append(Problem(name, "GGUF content under a name torch.load reads as a pickle: refused",
                                    unsafe=True))
            continue
        if fmt == GGUF and (name in weight_map_targets or Path(name).suffix.lower() == ".safetensors"):
            problems.append(Problem(name, "GGUF content under a safetensors name or in an index: no loader "
                                          "of either reads it"))
            continue
        if why := name_disagrees(name, fmt):  # still scanned below: unsafe content is refused as such
            problems.append(Problem(name, why))
        aux = fmt != SAFETENSORS and name not in weight_map_targets and bool(AUXILIARY.match(Path(name).name))
        out.append(Candidate(name, fmt, aux))
    return out, problems
