"""The tensors an architecture needs, from its config.json, for the seed architectures.

A checkpoint whose tensors do not match its config loads with missing or random weights (or
fails at the first matmul); catching that here costs only the headers.
"""

from __future__ import annotations

from .model import CONFIG_DTYPES, FLOAT_DTYPES, Problem, TensorInfo

LAYER_KEYS = ("num_hidden_layers", "n_layer")
OPTIONAL_SUFFIXES = ("rotary_emb.inv_freq", "attn.masked_bias", "attn.bias")


def _llama_attention(p: str, c: dict, bias: bool) -> dict:
    h = c["hidden_size"]
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or h // heads
    t = {p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv_heads * hd, h),
         p + "self_attn.v_proj.weight": (kv_heads * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
         p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    if bias:
        t.update({p + "self_attn.q_proj.bias": (heads * hd,), p + "self_attn.k_proj.bias": (kv_heads * hd,),
                  p + "self_attn.v_proj.bias": (kv_heads * hd,), p + "self_attn.o_proj.bias": (h,)})
    return t


def llama(c: dict, moe: bool = False) -> tuple[dict, set]:
    h, inter, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    expected = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        expected.update(_llama_attention(p, c, bool(c.get("attention_bias"))))
        if moe:
            e = c["num_local_experts"]
            expected.update({p + "block_sparse_moe.input_linear.weight": (e, 2 * inter, h),
                             p + "block_sparse_moe.output_linear.weight": (e, h, inter),
                             p + "block_sparse_moe.router.layer.weight": (e, h)})
        else:
            expected.update({p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                             p + "mlp.down_proj.weight": (h, inter)})
            if c.get("mlp_bias"):
                expected.update({p + "mlp.gate_proj.bias": (inter,), p + "mlp.up_proj.bias": (inter,),
                                 p + "mlp.down_proj.bias": (h,)})
    optional = set()
    if c.get("tie_word_embeddings", False):
        optional.add("lm_head.weight")
    else:
        expected["lm_head.weight"] = (vocab, h)
    return expected, optional


def gpt_bigcode(c: dict) -> tuple[dict, set]:
    h = c.get("n_embd") or c["hidden_size"]
    heads = c.get("n_head") or c["num_attention_heads"]
    inner = c.get("n_inner") or 4 * h
    hd = h // heads
    qkv = h + 2 * hd if c.get("multi_query", True) else 3 * h
    expected = {"transformer.wte.weight": (c["vocab_size"], h),
                "transformer.wpe.weight": (c.get("n_positions") or c["max_position_embeddings"], h),
                "transformer.ln_f.weight": (h,), "transformer.ln_f.bias": (h,)}
    for i in range(c.get("n_layer") or c["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        expected.update({p + "ln_1.weight": (h,), p + "ln_1.bias": (h,), p + "ln_2.weight": (h,),
                         p + "ln_2.bias": (h,), p + "attn.c_attn.weight": (qkv, h), p + "attn.c_attn.bias": (qkv,),
                         p + "attn.c_proj.weight": (h, h), p + "attn.c_proj.bias": (h,),
                         p + "mlp.c_fc.weight": (inner, h), p + "mlp.c_fc.bias": (inner,),
                         p + "mlp.c_proj.weight": (h, inner), p + "mlp.c_proj.bias": (h,)})
    optional = {"lm_head.weight"} if c.get("tie_word_embeddings", True) else set()
    if not optional:
        expected["lm_head.weight"] = (c["vocab_size"], h)
    return expected, optional


ARCHITECTURES = {
    "LlamaForCausalLM": llama,
    "GraniteForCausalLM": llama,
    "GraniteMoeForCausalLM": lambda c: llama(c, moe=True),
    "GPTBigCodeForCausalLM": gpt_bigcode,
}


def check_config(config: dict, tensors: dict[str, TensorInfo], label: str = "config.json") -> tuple[list[Problem], list[str]]:
    """Problems (missing, unexpected, wrong shape or dtype) and notes for one set of tensors."""
    archs = config.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        return [Problem(label, f"architectures must be a list of names, not {archs!r:.60}")], []
    arch = next((a for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        return [], [f"architecture {archs or '?'} is not one weightsafe knows; config check skipped"]
    for key in LAYER_KEYS:  # the config drives a loop: bound it by what the checkpoint holds
        layers = config.get(key)
        if layers is not None and (not isinstance(layers, int) or isinstance(layers, bool)
                                   or not 0 <= layers <= len(tensors)):
            return [Problem(label, f"{key} = {layers!r:.40} is not a layer count this checkpoint's "
                                   f"{len(tensors)} tensors could hold")], []
    try:
        expected, optional = ARCHITECTURES[arch](config)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as e:
        return [Problem(label, f"{arch} config lacks a usable {e}")], []
    problems = []
    for name, shape in expected.items():
        t = tensors.get(name)
        if t is None:
            problems.append(Problem(label, f"{arch} needs this tensor; no shard has it", name))
        elif t.shape != tuple(shape):
            problems.append(Problem(t.file, f"shape {list(t.shape)}, but {arch} with this config needs "
                                            f"{list(shape)}", name))
    for name, t in tensors.items():
        if name not in expected and name not in optional and not name.endswith(OPTIONAL_SUFFIXES):
            problems.append(Problem(t.file, f"not a tensor of {arch} (unexpected key)", name))
    want = CONFIG_DTYPES.get(str(config.get("torch_dtype") or config.get("dtype") or ""))
    floats = {t.dtype for t in tensors.values() if t.dtype in FLOAT_DTYPES}
    if want and floats and floats != {want}:
        odd = sorted((t for t in tensors.values() if t.dtype in FLOAT_DTYPES and t.dtype != want),
                     key=lambda t: t.name)
        problems.append(Problem(odd[0].file, f"dtype {odd[0].dtype}, but config.json says {want} "
                                             f"({len(odd)} tensor(s) differ)", odd[0].name))
    return problems, [f"{arch}: {len(expected)} tensors expected from config.json, all present"
                      if not problems else f"{arch}: config check found {len(problems)} problem(s)"]
