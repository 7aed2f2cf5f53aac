"""``check --forward``: build the model from config.json with the checked weights and run one short
forward pass; non-finite logits fail. Headers, shapes and a load prove the tensors are the ones
the architecture expects; only running the model proves they make a working model.

Runs only after the structure and load passes succeeded, so ``transformers`` reads weights the
scan approved (and it reads ``.bin`` files with ``weights_only=True`` itself). Nothing leaves the
machine: the directory is read with ``local_files_only`` and remote code is never trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .model import Problem

TOKENS = 8


@dataclass(frozen=True)
class ForwardResult:
    architecture: str
    device: str
    tokens: int
    seconds: float
    finite: bool

    def to_dict(self) -> dict:
        return {"architecture": self.architecture, "device": self.device, "tokens": self.tokens,
                "seconds": round(self.seconds, 4), "finite": self.finite}


def forward_check(directory: Path, device: str) -> tuple[ForwardResult | None, list[Problem]]:
    """One forward pass of ``TOKENS`` tokens on ``device``; a Problem for any failure."""
    try:
        import torch
        import transformers
    except ImportError:
        raise UsageError("check --forward needs torch and transformers: pip install 'weightsafe[load,compat]'") from None
    start = time.perf_counter()
    try:
        config = transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                                         trust_remote_code=False)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=False, torch_dtype="auto").to(device).eval()
        vocab = int(getattr(config, "vocab_size", 0) or 0)
        if vocab <= 0:
            return None, [Problem("config.json", "vocab_size is not a positive number: cannot run a forward pass")]
        ids = (torch.arange(TOKENS, device=device) * 7919 % vocab).unsqueeze(0)
        with torch.no_grad():
            logits = model(input_ids=ids).logits
    except Exception as e:  # a model that cannot be built or run is unusable, whatever the reason
        return None, [Problem(str(directory.name), f"the forward pass failed ({type(e).__name__}: {str(e)[:200]})")]
    finite = bool(torch.isfinite(logits).all())
    result = ForwardResult(type(model).__name__, device, TOKENS, time.perf_counter() - start, finite)
    if not finite:
        bad = int((~torch.isfinite(logits)).sum())
        return result, [Problem(str(directory.name), f"the forward pass gave {bad} non-finite logits "
                                                     f"of {logits.numel()}")]
    return result, []
