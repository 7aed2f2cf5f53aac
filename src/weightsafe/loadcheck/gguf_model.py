"""GGUF files as models: split sets put back together, then the metadata checked against the tensors.

A repository often holds a dozen quantisations, some split into ``NAME-0000N-of-0000M.gguf`` parts
that llama.cpp finds by name from the first. Each single file, and each complete split set, is
one model. A split set must be whole and agree with itself (``split.count``, ``split.no``,
``split.tensors.count``; every tensor in one part only). Then the architecture the metadata names
is held to the tensors present: ``{arch}.block_count`` against the ``blk.N.*`` tensors,
``{arch}.embedding_length`` and the vocabulary against ``token_embd.weight``, and a tokenizer
for a model that embeds tokens. What is unknown is a note, not a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .gguf_header import STRING, GGUFArray, GGUFFile
from .model import Problem

SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
BLOCK = re.compile(r"^blk\.(\d+)\.")
SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


@dataclass(frozen=True)
class GGUFModel:
    """One model: a single file, or the parts of a split set in order (the first holds the metadata)."""

    name: str
    parts: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.parts[0]


def group(files: dict[str, GGUFFile]) -> tuple[list[GGUFModel], list[Problem]]:
    """Models from parsed files (label -> header), and the problems of their split sets."""
    models, problems = [], []
    sets: dict[tuple[str, int], dict[int, str]] = {}
    for label in sorted(files):
        m = SPLIT_NAME.match(PurePosixPath(label).name)
        if m is None:
            count = files[label].metadata.get("split.count")
            if isinstance(count, int) and count > 1:
                problems.append(Problem(label, f"split.count is {count} but the name is not NAME-0000N-of-"
                                               f"{count:05d}.gguf (llama.cpp finds the other parts by name)"))
            else:
                models.append(GGUFModel(label, (label,)))
            continue
        prefix = str(PurePosixPath(label).parent / m["prefix"])
        sets.setdefault((prefix, int(m["count"])), {})[int(m["no"])] = label
    for (prefix, count), parts in sorted(sets.items()):
        set_problems = _check_set(prefix, count, parts, files)
        problems += set_problems
        if not set_problems:
            models.append(GGUFModel(f"{prefix}-*-of-{count:05d}.gguf", tuple(parts[n] for n in sorted(parts))))
    return models, problems


def _check_set(prefix: str, count: int, parts: dict[int, str], files: dict[str, GGUFFile]) -> list[Problem]:
    name = f"{prefix}-*-of-{count:05d}.gguf"
    if count == 0 or any(not 1 <= n <= count for n in parts):
        return [Problem(name, f"part numbers {sorted(parts)} do not fit 1..{count}")]
    problems = []
    missing = sorted(set(range(1, count + 1)) - set(parts))
    if missing:
        problems.append(Problem(name, f"part(s) {', '.join(map(str, missing))} of {count} missing"))
    seen_no: dict[int, str] = {}
    total = sum(len(files[label].tensors) for label in parts.values())
    owner: dict[str, str] = {}
    for n, label in sorted(parts.items()):
        meta = files[label].metadata
        values = {k: meta.get(k) for k in SPLIT_KEYS}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
            absent = [k for k, v in values.items() if not isinstance(v, int) or isinstance(v, bool)]
            problems.append(Problem(label, f"named as part {n} of {count} but {', '.join(absent)} missing or "
                                           "not an integer"))
            continue
        if values["split.count"] != count:
            problems.append(Problem(label, f"split.count is {values['split.count']} but the name says {count} parts"))
        no = values["split.no"]
        if no in seen_no:
            problems.append(Problem(label, f"split.no {no} is also in {seen_no[no]} (a duplicated part)"))
        elif no != n - 1:
            problems.append(Problem(label, f"split.no is {no} but the name says part {n} (split.no {n - 1})"))
        seen_no.setdefault(no, label)
        if values["split.tensors.count"] != total:
            problems.append(Problem(label, f"split.tensors.count is {values['split.tensors.count']} but the "
                                           f"{len(parts)} parts present hold {total} tensors"))
        for t in files[label].tensors:
            if t.name in owner:
                problems.append(Problem(label, f"also stored in {owner[t.name]} (a tensor belongs to one part)",
                                        t.name))
            owner.setdefault(t.name, label)
    return problems


def check_architecture(model: GGUFModel, files: dict[str, GGUFFile]) -> tuple[list[Problem], list[str]]:
    """The metadata's architecture against the model's tensors: problems and notes."""
    meta = files[model.first].metadata
    tensors = {t.name: t for label in model.parts for t in files[label].tensors}
    problems, notes = [], []
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return [], [f"{model.name}: no general.architecture in the metadata: architecture checks skipped"]
    try:
        from gguf import MODEL_ARCH_NAMES

        if arch not in set(MODEL_ARCH_NAMES.values()):
            notes.append(f"{model.name}: architecture {arch!r} is unknown to the gguf package: checked only "
                         "against its own metadata")
    except ImportError:  # pragma: no cover - gguf is needed to get this far
        pass
    blocks = meta.get(f"{arch}.block_count")
    present = {int(m.group(1)) for n in tensors if (m := BLOCK.match(n))}
    if isinstance(blocks, int) and not isinstance(blocks, bool):
        missing = sorted(set(range(blocks)) - present)
        extra = sorted(present - set(range(blocks)))
        if missing:
            problems.append(Problem(model.first, f"{arch}.block_count is {blocks} but blocks {_few(missing)} have no "
                                                 "blk.N.* tensors"))
        if extra:
            problems.append(Problem(model.first, f"{arch}.block_count is {blocks} but there are blk.N.* tensors for "
                                                 f"blocks {_few(extra)}"))
        if not missing and not extra:
            notes.append(f"{model.name}: {arch}, {blocks} blocks, all present")
    else:
        notes.append(f"{model.name}: no {arch}.block_count: block check skipped")
    embd = tensors.get("token_embd.weight")
    width = meta.get(f"{arch}.embedding_length")
    if embd is None:
        notes.append(f"{model.name}: no token_embd.weight: embedding and vocabulary checks skipped")
        return problems, notes
    if isinstance(width, int) and not isinstance(width, bool):
        if embd.dims[0] != width:
            problems.append(Problem(model.first, f"{arch}.embedding_length is {width} but the token embedding is "
                                                 f"{list(embd.dims)}", "token_embd.weight"))
    else:
        notes.append(f"{model.name}: no {arch}.embedding_length: embedding check skipped")
    tokens, kind = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.model")
    if tokens is None or kind is None:
        absent = [k for k, v in (("tokenizer.ggml.model", kind), ("tokenizer.ggml.tokens", tokens)) if v is None]
        problems.append(Problem(model.first, f"no tokenizer: {', '.join(absent)} missing from the metadata of a "
                                             "model that embeds tokens"))
    elif not isinstance(tokens, GGUFArray) or tokens.item_type != STRING or not isinstance(kind, str):
        problems.append(Problem(model.first, "tokenizer.ggml.tokens must be an array of strings and "
                                             "tokenizer.ggml.model a string"))
    elif len(embd.dims) > 1 and embd.dims[1] != tokens.length:
        problems.append(Problem(model.first, f"the vocabulary has {tokens.length} tokens but the token embedding "
                                             f"is {list(embd.dims)} (llama.cpp needs [n_embd, n_vocab])",
                                "token_embd.weight"))
    return problems, notes


def _few(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:8]))
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")
