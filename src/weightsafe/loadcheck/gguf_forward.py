"""``check --forward`` for GGUF: llama.cpp itself (``llama-cpp-python``, the optional extra
``weightsafe[gguf-forward]``) loads each model and evaluates a few tokens; non-finite logits fail.

Only the engine that serves a GGUF proves it makes a working model, so this is llama.cpp, not a
reimplementation. It runs in a child process: llama.cpp is native code, and whatever it does
with a model (a crash, a fatal assertion, its own logging) must end as one line here, never take
the check down with it. Where the extra is not installed the pass is skipped with a note.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from .forward import TOKENS, ForwardResult
from .model import Problem

TIMEOUT = 1800
SKIPPED = ("check --forward: llama-cpp-python is not installed (pip install 'weightsafe[gguf-forward]'): "
           "the GGUF forward pass was skipped")


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def forward_gguf(path: Path, label: str, device: str) -> tuple[ForwardResult | None, list[Problem], list[str]]:
    """Evaluate ``TOKENS`` tokens of the model whose (first) file is ``path``, in a child process:
    the result, problems, and notes."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "weightsafe.loadcheck.gguf_forward", str(path), device],
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, [Problem(label, f"llama.cpp did not finish evaluating {TOKENS} tokens in {TIMEOUT} s")], []
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:200]
        return None, [Problem(label, f"llama.cpp failed to load or run the model ({how}{': ' + tail if tail else ''})")], []
    out = json.loads(lines[-1])
    if "skipped" in out:
        return None, [], [f"check --forward: llama-cpp-python cannot be imported ({out['skipped'][:160]}): "
                          "the GGUF forward pass was skipped"]
    if "error" in out:
        return None, [Problem(label, f"llama.cpp failed to load or run the model ({out['error'][:200]})")], []
    result = ForwardResult(f"llama.cpp {out['architecture']}", device, out["tokens"], time.perf_counter() - start,
                           out["bad"] == 0)
    if out["bad"]:
        return result, [Problem(label, f"llama.cpp's evaluation gave {out['bad']} non-finite logits of "
                                       f"{out['total']}")], []
    return result, [], []


def _child(path: str, device: str) -> dict:
    """In the child: load with llama.cpp, evaluate, count non-finite logits."""
    import numpy as np

    try:
        from llama_cpp import Llama
    except ImportError as e:  # installed but broken (a missing dependency): as good as absent
        return {"skipped": f"{type(e).__name__}: {e}"}
    try:
        llm = Llama(model_path=path, n_ctx=64, n_batch=64, n_gpu_layers=-1 if device.startswith("cuda") else 0,
                    logits_all=True, verbose=False, seed=0)
        vocab = llm.n_vocab()
        ids = [(i * 7919) % vocab for i in range(TOKENS)]
        llm.eval(ids)
        logits = np.asarray(llm.scores[:llm.n_tokens], dtype=np.float32)
    except Exception as e:  # noqa: BLE001 - reported by the parent as one line
        return {"error": f"{type(e).__name__}: {e}"}
    arch = llm.metadata.get("general.architecture", "?") if isinstance(llm.metadata, dict) else "?"
    return {"architecture": arch, "tokens": len(ids), "bad": int((~np.isfinite(logits)).sum()),
            "total": int(logits.size)}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2])), flush=True)
