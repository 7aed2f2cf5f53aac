"""Small synthetic replicas of the seed models: real file names, formats, shard counts and
tensor names, tiny dimensions. Built deterministically, so digests are stable across runs.

A replica is what the test hub serves; ``replica_manifest`` writes the manifest a user of the
replica would have (digests computed from the replica's bytes, sources named as in the real
manifests).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

LFS_SUFFIXES = (".bin", ".safetensors", ".model", ".pt", ".gguf")


@dataclass
class Replica:
    name: str
    repo: str
    commit: str
    files: dict[str, bytes]
    config: dict
    md5_card: tuple[str, ...] = ()  # files whose MD5 the (synthetic) model card publishes
    extra: dict = field(default_factory=dict)

    @property
    def weight_bytes(self) -> int:
        return sum(len(b) for p, b in self.files.items() if p.endswith((".bin", ".safetensors")))


def fake_commit(name: str) -> str:
    return hashlib.sha1(f"replica:{name}".encode()).hexdigest()


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) > 10 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------- tensors per architecture

def _llama_layer(i, h, kv, inter, bias):
    p = f"model.layers.{i}."
    t = {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
         p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
         p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
         p + "mlp.down_proj.weight": (h, inter),
         p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    if bias:
        t.update({p + "self_attn.q_proj.bias": (h,), p + "self_attn.k_proj.bias": (kv,),
                  p + "self_attn.v_proj.bias": (kv,), p + "self_attn.o_proj.bias": (h,),
                  p + "mlp.gate_proj.bias": (inter,), p + "mlp.up_proj.bias": (inter,),
                  p + "mlp.down_proj.bias": (h,)})
    return t


def _moe_layer(i, h, kv, inter, experts):
    p = f"model.layers.{i}."
    return {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "block_sparse_moe.input_linear.weight": (experts, 2 * inter, h),
            p + "block_sparse_moe.output_linear.weight": (experts, h, inter),
            p + "block_sparse_moe.router.layer.weight": (experts, h),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}


def _bigcode_layer(i, h, head_dim, inter):
    p = f"transformer.h.{i}."
    qkv = h + 2 * head_dim  # multi-query attention: one shared key and value head
    return {p + "ln_1.weight": (h,), p + "ln_1.bias": (h,),
            p + "attn.c_attn.weight": (qkv, h), p + "attn.c_attn.bias": (qkv,),
            p + "attn.c_proj.weight": (h, h), p + "attn.c_proj.bias": (h,),
            p + "ln_2.weight": (h,), p + "ln_2.bias": (h,),
            p + "mlp.c_fc.weight": (inter, h), p + "mlp.c_fc.bias": (inter,),
            p + "mlp.c_proj.weight": (h, inter), p + "mlp.c_proj.bias": (h,)}


def llama_like(config: dict, bias: bool, moe: bool = False) -> list[dict]:
    """Tensor groups (one dict per layer, plus head and tail) of a Llama-family config."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    kv = h // heads * kv_heads
    inter = config["intermediate_size"]
    groups = [{"model.embed_tokens.weight": (config["vocab_size"], h)}]
    for i in range(layers):
        groups.append(_moe_layer(i, h, kv, inter, config["num_local_experts"]) if moe
                      else _llama_layer(i, h, kv, inter, bias))
    tail = {"model.norm.weight": (h,)}
    if not config.get("tie_word_embeddings", False):
        tail["lm_head.weight"] = (config["vocab_size"], h)
    groups.append(tail)
    return groups


def bigcode(config: dict) -> list[dict]:
    h = config["n_embd"]
    groups = [{"transformer.wte.weight": (config["vocab_size"], h),
               "transformer.wpe.weight": (config["n_positions"], h)}]
    for i in range(config["n_layer"]):
        groups.append(_bigcode_layer(i, h, h // config["n_head"], config["n_inner"]))
    groups.append({"transformer.ln_f.weight": (h,), "transformer.ln_f.bias": (h,)})
    return groups


# ---------------------------------------------------------------- serialisation

def _tensors(shapes: dict, dtype: str, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    tdtype = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype]
    out = {}
    for name, shape in shapes.items():
        t = torch.randn(*shape, generator=gen) * 0.02
        if name.endswith("layernorm.weight") or name.endswith("norm.weight") or ".ln_" in name:
            t = torch.ones(*shape)
        out[name] = t.to(tdtype).contiguous()
    return out


def shard(groups: list[dict], n: int) -> list[dict]:
    """Split tensor groups into ``n`` shards in order, as transformers' save does."""
    if n == 1:
        merged = {}
        for g in groups:
            merged.update(g)
        return [merged]
    body = groups[1:-1]
    per = -(-len(body) // n)
    shards = [dict() for _ in range(n)]
    for i, g in enumerate(body):
        shards[min(i // per, n - 1)].update(g)
    shards[0] = {**groups[0], **shards[0]}
    shards[-1].update(groups[-1])
    return shards


def save_safetensors(tensors) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"format": "pt"})


def save_bin(tensors) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def weight_files(groups: list[dict], n: int, fmt: str, dtype: str, seed: int) -> dict[str, bytes]:
    """Shard files plus their index (none for a single safetensors file, as on the hub)."""
    files: dict[str, bytes] = {}
    weight_map: dict[str, str] = {}
    total = 0
    for i, shapes in enumerate(shard(groups, n)):
        tensors = _tensors(shapes, dtype, seed + i)
        if fmt == "safetensors":
            fname = "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            files[fname] = save_safetensors(tensors)
        else:
            fname = "pytorch_model.bin" if n == 1 else f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin"
            files[fname] = save_bin(tensors)
        for tname, t in tensors.items():
            weight_map[tname] = fname
            total += t.numel() * t.element_size()
    if n > 1:
        index_name = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        files[index_name] = json.dumps(index, indent=2).encode()
    return files


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def tokenizer_files(with_sentencepiece: bool) -> dict[str, bytes]:
    vocab = {f"tok{i}": i for i in range(256)}
    files = {
        "tokenizer.json": _json({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}}),
        "tokenizer_config.json": _json({"model_max_length": 4096, "tokenizer_class": "PreTrainedTokenizerFast"}),
        "special_tokens_map.json": _json({"bos_token": "tok1", "eos_token": "tok2"}),
    }
    if with_sentencepiece:
        files["tokenizer.model"] = hashlib.sha256(b"sentencepiece").digest() * 64
    return files


def repo_extras(repo: str) -> dict[str, bytes]:
    lfs = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES)
    return {".gitattributes": lfs.encode(), "README.md": f"# {repo} (synthetic replica)\n".encode()}


# ---------------------------------------------------------------- the seed replicas

TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=256, max_position_embeddings=128, rms_norm_eps=1e-5)


def _llama_config(layers, dtype, tied, bias, arch="LlamaForCausalLM", model_type="llama", **kw):
    return {"architectures": [arch], "model_type": model_type, **TINY, "num_hidden_layers": layers,
            "torch_dtype": dtype, "tie_word_embeddings": tied, "attention_bias": bias,
            "mlp_bias": bias, **kw}


def _build(name, repo, commit, config, groups, n, fmt, dtype, sentencepiece=False, md5=False,
           both_formats=False, seed=0) -> Replica:
    files = {"config.json": _json(config),
             "generation_config.json": _json({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2})}
    files.update(tokenizer_files(sentencepiece))
    files.update(weight_files(groups, n, fmt, dtype, seed))
    if both_formats:
        files.update(weight_files(groups, n, "safetensors", dtype, seed))
    files.update(repo_extras(repo))
    card = tuple(p for p in files if p.endswith(".bin")) if md5 else ()
    if card:  # the card publishes an MD5 table, as CodeFuse's does
        files["README.md"] += md5_card({p: hashlib.md5(files[p]).hexdigest() for p in card})
    return Replica(name, repo, commit, dict(sorted(files.items())), config, card)


def write_replica(r: Replica, d):
    """The replica's files in a plain directory ``d`` (a pre-baked volume); returns ``d``."""
    for path, data in r.files.items():
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_bytes(data)
    return d


def md5_card(md5s: dict[str, str]) -> bytes:
    """An MD5 section laid out like CodeFuse's model card."""
    rows = "".join(f"| {p} | {h} |\n" for p, h in md5s.items())
    return ("\n## MD5\nWe notice that the file may be corrupted during transfer process. Please check MD5 value "
            "before use.\n\n| Model File | MD5 Value |\n|:---|:---:|\n" + rows).encode()


def build_all() -> dict[str, Replica]:
    """All seed replicas, keyed by manifest name."""
    out = {}
    c = _llama_config(7, "bfloat16", False, False)
    out["codefuse-34b"] = _build("codefuse-34b", "codefuse-ai/CodeFuse-CodeLlama-34B",
                                 "7b92b5b0565e86eba9135a6c094d20107d82ee5f", c,
                                 llama_like(c, False), 7, "bin", "bfloat16", sentencepiece=True,
                                 md5=True, seed=100)
    c = _llama_config(4, "bfloat16", True, True)
    out["granite-8b-code-instruct-4k"] = _build(
        "granite-8b-code-instruct-4k", "ibm-granite/granite-8b-code-instruct-4k",
        fake_commit("granite-8b-code-instruct-4k"), c, llama_like(c, True), 4, "safetensors",
        "bfloat16", seed=200)
    c = _llama_config(2, "bfloat16", True, False, arch="GraniteMoeForCausalLM", model_type="granitemoe",
                      intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                      embedding_multiplier=12.0, logits_scaling=6.0, residual_multiplier=0.22,
                      attention_multiplier=0.015625)
    out["granite-3.0-1b-a400m-instruct"] = _build(
        "granite-3.0-1b-a400m-instruct", "ibm-granite/granite-3.0-1b-a400m-instruct",
        "dca1980019e0973d7530bbf08d864ffdb76a4402", c, llama_like(c, False, moe=True), 1,
        "safetensors", "bfloat16", seed=300)
    c = _llama_config(2, "bfloat16", True, False, arch="GraniteForCausalLM", model_type="granite",
                      embedding_multiplier=12.0, logits_scaling=8.0, residual_multiplier=0.22,
                      attention_multiplier=0.015625)
    out["granite-3.0-2b-instruct"] = _build(
        "granite-3.0-2b-instruct", "ibm-granite/granite-3.0-2b-instruct",
        "62049f007579b9fcee07200e4543cb9d5d0c66c2", c, llama_like(c, False), 2, "safetensors",
        "bfloat16", seed=400)
    c = {"architectures": ["GPTBigCodeForCausalLM"], "model_type": "gpt_bigcode", "vocab_size": 256,
         "n_embd": 64, "n_layer": 7, "n_head": 4, "n_inner": 256, "n_positions": 128,
         "multi_query": True, "torch_dtype": "float32", "tie_word_embeddings": True,
         "activation_function": "gelu_pytorch_tanh", "layer_norm_epsilon": 1e-5}
    out["octocoder"] = _build("octocoder", "bigcode/octocoder", fake_commit("octocoder"), c,
                              bigcode(c), 7, "bin", "float32", both_formats=True, seed=500)
    out["starcoder-gpteacher-code-instruct"] = _build(
        "starcoder-gpteacher-code-instruct", "GeorgiaTechResearchInstitute/starcoder-gpteacher-code-instruct",
        "15904cc22d5954d3bbf5904cdc8817d8c89f460c", c, bigcode(c), 7, "bin", "float32", seed=600)
    return out


# ---------------------------------------------------------------- manifests for replicas

MANIFEST_FILES = (".bin", ".safetensors", ".json", ".model")


def replica_manifest(r: Replica, include_md5: bool = True) -> str:
    """The manifest text a user of this replica would have (what the real ones look like)."""
    lines = [
        "schema = 1", f'name = "{r.name}"', f'repo = "{r.repo}"', f'revision = "{r.commit}"',
        f'description = "Synthetic test replica of {r.repo}"', "", "[sources]",
        'card = "MD5 table in the (synthetic) model card"',
        'hub-lfs = "LFS pointer oid (sha256) at the pinned revision"',
        'hub-git = "git blob id at the pinned revision"', "",
    ]
    for path, data in r.files.items():
        if not path.endswith(MANIFEST_FILES):
            continue
        lines += ["[[files]]", f'path = "{path}"', f"size = {len(data)}", "digests = ["]
        if include_md5 and path in r.md5_card:
            lines.append(f'  {{ alg = "md5", hex = "{hashlib.md5(data).hexdigest()}", source = "card" }},')
        if is_lfs(path, data):
            lines.append(f'  {{ alg = "sha256", hex = "{hashlib.sha256(data).hexdigest()}", source = "hub-lfs" }},')
        else:
            lines.append(f'  {{ alg = "git-sha1", hex = "{git_blob_sha1(data)}", source = "hub-git" }},')
        lines += ["]", ""]
    return "\n".join(lines)
