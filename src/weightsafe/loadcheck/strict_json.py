"""JSON as strict parsers (serde_json, the safetensors reference) read it: a duplicate key, a lone
surrogate, ``NaN``/``Infinity`` or nesting deep enough to exhaust the stack is an error, never a
value one reader keeps and another drops, and never a crash."""

from __future__ import annotations

import json
from typing import Any


class StrictJSONError(ValueError):
    """The text is not JSON every strict reader reads alike; the message says why."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise StrictJSONError(f"duplicate key {k!r:.80}")
        _no_surrogate(k)
        if isinstance(v, str):
            _no_surrogate(v)
        out[k] = v
    return out


def _no_surrogate(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError(f"a lone surrogate in {s!r:.80} (not valid Unicode)") from None


def _constant(name: str):
    raise StrictJSONError(f"{name} is not JSON")


def loads(raw: bytes | str, parse_int=None) -> Any:
    """Parse ``raw``; raises StrictJSONError (a ValueError) for anything ambiguous or malformed.
    ``parse_int``: as in ``json.loads``, for a reader that must see integers as serde_json does."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=parse_int)
    except RecursionError:
        raise StrictJSONError("nested too deeply") from None
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    except StrictJSONError:
        raise
    except ValueError as e:
        raise StrictJSONError(str(e)[:120]) from None
    if isinstance(value, str):
        _no_surrogate(value)
    return value
