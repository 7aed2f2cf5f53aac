"""Real GGUF files for the tests, written by llama.cpp's own ``gguf.GGUFWriter`` (nothing is
downloaded), and a byte-level builder for the hostile ones no writer would produce."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

gguf = __import__("pytest").importorskip("gguf")
from gguf import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import quantize  # noqa: E402

VOCAB, EMBD, FFN, BLOCKS = 32, 64, 128, 2
Q4_K_SCALE = np.float16(0.01).view(np.uint16)


def q4_k_blocks(rows: int, cols: int, rng) -> np.ndarray:
    """Q4_K bytes (no Python quantiser exists): random quants and mins with finite scales."""
    n = rows * cols // 256
    blocks = rng.integers(0, 256, size=(n, 144), dtype=np.uint8)
    blocks[:, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)  # d
    blocks[:, 2:4] = np.frombuffer(np.float16(0.001).tobytes(), np.uint8)  # dmin
    return blocks.reshape(rows, cols // 256 * 144)


def tiny_llama(path: Path, qtype: Q | None = None, split_max_tensors: int = 0, arch: str = "llama",
               vocab: int = VOCAB, embd: int = EMBD, blocks: int = BLOCKS, tokenizer: bool = True,
               block_count: int | None = None, embedding_length: int | None = None, seed: int = 0) -> list[Path]:
    """A tiny llama-architecture model llama.cpp can run: F32 norms, 2-D weights in ``qtype``
    (F32 when None). Returns the files written (several with ``split_max_tensors``)."""
    w = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    w.add_block_count(blocks if block_count is None else block_count)
    w.add_embedding_length(embd if embedding_length is None else embedding_length)
    w.add_context_length(256)
    w.add_feed_forward_length(FFN)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    if tokenizer:
        w.add_tokenizer_model("llama")
        w.add_token_list([f"t{i}" for i in range(vocab)])
        w.add_token_scores([0.0] * vocab)
        w.add_token_types([1] * vocab)
    rng = np.random.default_rng(seed)

    def add(name: str, shape: tuple[int, ...]):
        a = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if qtype is None or len(shape) == 1 or shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:  # as llama.cpp: F32
            w.add_tensor(name, a)
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        elif qtype == Q.Q4_K:
            w.add_tensor(name, q4_k_blocks(*shape, rng), raw_dtype=Q.Q4_K)
        else:
            w.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)

    add("token_embd.weight", (vocab, embd))
    for b in range(blocks):
        add(f"blk.{b}.attn_norm.weight", (embd,))
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"blk.{b}.{n}.weight", (embd, embd))
        add(f"blk.{b}.ffn_norm.weight", (embd,))
        add(f"blk.{b}.ffn_gate.weight", (FFN, embd))
        add(f"blk.{b}.ffn_up.weight", (FFN, embd))
        add(f"blk.{b}.ffn_down.weight", (embd, FFN))
    add("output_norm.weight", (embd,))
    add("output.weight", (vocab, embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if split_max_tensors:
        return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
    return [path]


def single_tensor(path: Path, array: np.ndarray, raw_dtype: Q | None = None, name: str = "w") -> Path:
    """One tensor and no architecture metadata beyond general.architecture."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- byte-level builder: exactly the bytes a hostile file needs -------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


def gstr(b: bytes | str, length: int | None = None) -> bytes:
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b) if length is None else length) + b


def kv(key: bytes | str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_u32(key: str, v: int) -> bytes:
    return kv(key, U32, struct.pack("<I", v))


def kv_str(key: str, v: bytes | str) -> bytes:
    return kv(key, STRING, gstr(v))


def info(name: bytes | str, dims: list[int], type_id: int, offset: int, n_dims: int | None = None) -> bytes:
    return (gstr(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
            + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", type_id, offset))


def build(kvs: list[bytes], infos: list[bytes], data: bytes, version: int = 3, n_tensors: int | None = None,
          n_kv: int | None = None, alignment: int = 32) -> bytes:
    head = (b"GGUF" + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                  len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(infos))
    head += bytes(-len(head) % alignment)
    return head + data


def minimal(**kw) -> bytes:
    """A valid file: general.architecture and one F32 tensor of 8 values (32 bytes)."""
    return build([kv_str("general.architecture", "llama")], [info("w", [8], 0, 0)],
                 np.arange(8, dtype=np.float32).tobytes(), **kw)
