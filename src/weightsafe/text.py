"""The one escaping function every output path uses: names and messages come from files, cards and
hubs an attacker may write, and reach terminals, manifests' notes and logs."""

from __future__ import annotations

import unicodedata


def escape(text: str) -> str:
    """``text`` safe for a terminal: control characters (C0, C1 such as U+009B, which starts an
    escape sequence on many terminals), format characters (bidi overrides) and lone surrogates are
    written as ``\\xNN``/``\\uNNNN``. Names come from files and hubs an attacker may control;
    ``--json`` keeps them exact instead (JSON escapes them itself)."""
    if text.isprintable():
        return text
    return "".join(ch if ch == " " or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
                   else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}") for ch in text)


__all__ = ["escape"]
