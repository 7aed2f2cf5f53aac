"""Cross-check a sharded checkpoint's index against the shards' own tensor lists."""

from __future__ import annotations

from pathlib import Path

from ..manifest import check_relpath
from .strict_json import loads as strict_loads
from .model import Problem, Structure

INDEXES = {"safetensors": "model.safetensors.index.json", "bin": "pytorch_model.bin.index.json"}


def check_index(directory: Path, fmt: str, structure: Structure, manifest_paths: set[str] | None,
                shard_files: list[str]) -> list[Problem]:
    """Every shard in the weight_map exists (and is in the manifest); every tensor is in exactly
    the shard the index names; no shard holds unlisted tensors; total_size agrees."""
    name = INDEXES[fmt]
    path = directory / name
    if not path.exists():
        if len(shard_files) > 1:
            return [Problem(name, f"{len(shard_files)} {fmt} shards but no index file")]
        return []
    try:
        index = strict_loads(path.read_bytes())
        if not isinstance(index, dict):
            raise ValueError("not a JSON object")
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError("weight_map is not an object mapping tensor names to file names")
        if not isinstance(index.get("metadata") or {}, dict):
            raise ValueError("metadata is not an object")
    except (OSError, ValueError) as e:
        return [Problem(name, f"unreadable index ({e})")]
    problems = []
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        try:
            check_relpath(shard, "shard")
        except (ValueError, TypeError) as e:
            problems.append(Problem(name, f"weight_map names an unsafe shard path {shard!r}: {e}", unsafe=True))
            continue
        if not (directory / shard).is_file():
            problems.append(Problem(name, f"weight_map names {shard}, which is not in the directory"))
        elif manifest_paths is not None and shard not in manifest_paths:
            problems.append(Problem(name, f"weight_map names {shard}, which is not in the manifest"))
    if problems:
        return problems
    located = structure.by_name(shards)
    for tensor, shard in weight_map.items():
        if shard in structure.failed:  # already reported once; its tensors are unknown, not missing
            continue
        where = sorted({t.file for t in located.get(tensor, [])})
        if not where:
            problems.append(Problem(shard, "listed in the index but not in its shard", tensor))
        elif where != [shard]:
            others = [w for w in where if w != shard]
            if shard in where:
                problems.append(Problem(shard, f"also stored in {', '.join(others)}", tensor))
            else:
                problems.append(Problem(shard, f"the index says {shard} but it is in {', '.join(where)}", tensor))
    for shard in shards:
        for t in structure.tensors.get(shard, []):
            if t.name not in weight_map:
                problems.append(Problem(shard, "stored in the shard but not listed in the index", t.name))
    for orphan in sorted(set(shard_files) - set(shards)):
        problems.append(Problem(orphan, f"a {fmt} weight file that {name} does not mention"))
    total = (index.get("metadata") or {}).get("total_size")
    actual = sum(t.nbytes for s in shards for t in structure.tensors.get(s, []))
    if total is not None and total != actual and not structure.failed & set(shards):
        problems.append(Problem(name, f"total_size is {total} but the shards' tensors hold {actual} bytes"))
    return problems
