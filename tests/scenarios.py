"""Shared by the reliability tests and bench/torture.py: the faults a hub or CDN can throw at a
pull, a corpus of malformed manifests, and hostile file names.

Each fault scenario sets up faults on a HubState for a pull of the ``granite-3.0-2b-instruct``
replica and says which exit code a correct client gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

TARGET = "model-00001-of-00002.safetensors"
MODEL = "granite-3.0-2b-instruct"


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable  # (state) -> None
    exit_code: int
    what: str
    env: tuple = ()  # extra environment variables for the pull
    token: bool = False


def _f(kind, **kw):
    return lambda state: state.fault(kind, **kw)


def _both(*setups):
    def run(state):
        for s in setups:
            s(state)
    return run


def _gate(state):
    state.repos["ibm-granite/granite-3.0-2b-instruct"].gated = True


FAULTS = [
    Scenario("drop after N bytes", _f("drop", host="cdn", path=TARGET, after=20_000), 0,
             "connection reset mid-body: resumed with Range + If-Range"),
    Scenario("drop at every request", _f("drop", host="cdn", path=TARGET, after=0, times=None), 3,
             "no progress possible: gives up after bounded retries"),
    Scenario("drop every 16 kB, forever", _f("drop", host="cdn", path=TARGET, after=16_000, times=None), 0,
             "each attempt makes progress, so the retry budget renews"),
    Scenario("500 once", _f("status", host="cdn", path=TARGET, code=500), 0, "retried"),
    Scenario("502 twice", _f("status", host="cdn", path=TARGET, code=502, times=2), 0, "retried with backoff"),
    Scenario("503 forever", _f("status", host="cdn", path=TARGET, code=503, times=None), 3,
             "retries exhausted: one-line hub error"),
    Scenario("429 with Retry-After", _f("status", host="hub", path=TARGET, code=429, retry_after=1), 0,
             "waits as told, then succeeds"),
    Scenario("truncated body, correct Content-Length", _f("truncate", host="cdn", path=TARGET, after=30_000), 0,
             "short read detected, resumed"),
    Scenario("corrupt first byte", _f("corrupt", host="cdn", path=TARGET, where="start", times=None), 1,
             "digest mismatch: bytes discarded, nothing at the final path"),
    Scenario("corrupt middle byte", _f("corrupt", host="cdn", path=TARGET, where="middle", times=None), 1,
             "digest mismatch"),
    Scenario("corrupt last byte", _f("corrupt", host="cdn", path=TARGET, where="end", times=None), 1,
             "digest mismatch"),
    Scenario("200 + full body to a Range request",
             _both(_f("drop", host="cdn", path=TARGET, after=20_000),
                   _f("ignore_range", host="cdn", path=TARGET)), 0,
             "the part starts over instead of appending the whole file"),
    Scenario("bad Content-Range",
             _both(_f("drop", host="cdn", path=TARGET, after=20_000),
                   _f("bad_content_range", host="cdn", path=TARGET)), 0,
             "range refused, the part starts over"),
    Scenario("new revision uploaded mid-download",
             _both(_f("drop", host="cdn", path=TARGET, after=20_000),
                   _f("mutate", host="cdn", path=TARGET, skip=1, times=None)), 1,
             "ETag changed: restarted on the new content, whose digest then fails"),
    Scenario("stall: headers, then silence", _f("stall", host="cdn", path=TARGET, seconds=30), 0,
             "read timeout, resumed", env=(("WEIGHTSAFE_READ_TIMEOUT", "1"),)),
    Scenario("hang before any header", _f("hang", host="cdn", path=TARGET, seconds=30), 0,
             "read timeout before the response, retried", env=(("WEIGHTSAFE_READ_TIMEOUT", "1"),)),
    Scenario("redirect loop", _f("redirect_loop", host="hub", path=TARGET, times=None), 3,
             "loop detected: one-line hub error"),
    Scenario("redirect to another host", _f("redirect_other_host", host="hub", path=TARGET, times=None), 1,
             "followed without the token; the other host's file is refused", token=True),
    Scenario("gated repo, no token", _gate, 3, "401 with a hint to set HF_TOKEN"),
    Scenario("gated repo, with token", _gate, 0, "token sent to the hub only", token=True),
    Scenario("CDN answers 403 (expired signature)", _f("status", host="cdn", path=TARGET, code=403, times=None), 3,
             "one-line hub error"),
]


# ------------------------------------------------------------------ malformed manifests

GOOD = '''schema = 1
name = "m"
repo = "org/m"
revision = "main"

[sources]
card = "the card"

[[files]]
path = "a.bin"
size = 3
digests = [{ alg = "md5", hex = "900150983cd24fb0d6963f7d28e17f72", source = "card" }]
'''
MD5 = "900150983cd24fb0d6963f7d28e17f72"


def _sub(old, new):
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


HOSTILE_NAMES = ["../x", "/abs", "a/../../x", "C:\\x", "C:x", "a\x00b", "..\\x", "x" * 300,
                 "/".join(["d" * 200] * 6), "a//b", "./a", "a/./b", "con", "aux.json", "x/", "a\nb",
                 "trailing.", "..", "."]


def malformed_manifests() -> dict[str, str | bytes]:
    """name -> manifest text (or bytes); every one must be rejected with exit 2."""
    m: dict[str, str | bytes] = {
        # bad TOML
        "toml: unclosed array": _sub("digests = [", "digests = [[").replace("}]", "}"),
        "toml: missing value": _sub('revision = "main"', "revision ="),
        "toml: duplicate key": _sub('revision = "main"', 'revision = "main"\nrevision = "dev"'),
        "toml: bad escape": _sub('"the card"', '"the \\q card"'),
        "toml: unterminated string": _sub('"the card"', '"the card'),
        "toml: table redefined": GOOD + "\n[sources]\nx = \"y\"\n",
        "toml: bare words": "this is not toml at all",
        "toml: broken table header": _sub("[[files]]", "[[files]"),
        "toml: not utf-8": GOOD.encode().replace(b"the card", b"the \xff card"),
        "toml: empty file": "",
        # wrong types
        "type: name is a number": _sub('name = "m"', "name = 1"),
        "type: repo is an array": _sub('repo = "org/m"', 'repo = ["org/m"]'),
        "type: revision is a bool": _sub('revision = "main"', "revision = true"),
        "type: files is a string": GOOD.split("[[files]]")[0] + 'files = "a.bin"\n',
        "type: files holds numbers": GOOD.split("[[files]]")[0] + "files = [1, 2]\n",
        "type: size is a float": _sub("size = 3", "size = 3.5"),
        "type: size is a string": _sub("size = 3", 'size = "3"'),
        "type: digests is a table": _sub(f'digests = [{{ alg = "md5", hex = "{MD5}", source = "card" }}]',
                                         f'digests = {{ alg = "md5", hex = "{MD5}", source = "card" }}'),
        "type: sources is an array": _sub('[sources]\ncard = "the card"', 'sources = ["card"]'),
        "type: notes is a string": _sub('revision = "main"', 'revision = "main"\nnotes = "x"'),
        "type: schema is a string": _sub("schema = 1", 'schema = "1"'),
        # bad hex
        "hex: uppercase": _sub(MD5, MD5.upper()),
        "hex: too short": _sub(MD5, MD5[:-1]),
        "hex: not hex": _sub(MD5, "g" + MD5[1:]),
        "hex: 0x prefix": _sub(MD5, "0x" + MD5[2:]),
        "hex: sha256 length for md5": _sub(MD5, "a" * 64),
        # unknown algorithm
        "alg: crc32": _sub('alg = "md5"', 'alg = "crc32"'),
        "alg: upper-case SHA256": _sub('alg = "md5"', 'alg = "SHA256"'),
        "alg: blake3": _sub('alg = "md5"', 'alg = "blake3"'),
        # sizes
        "size: negative": _sub("size = 3", "size = -1"),
        "size: negative approx": _sub("size = 3", "size = 3\nsize_approx = -5"),
        # duplicates and structure
        "files: duplicate path": GOOD + '\n[[files]]\npath = "a.bin"\n',
        "files: duplicate ignoring case": GOOD + '\n[[files]]\npath = "A.BIN"\n',
        "files: file and directory": GOOD + '\n[[files]]\npath = "a.bin/inner"\n',
        "files: empty": GOOD.split("[[files]]")[0] + "files = []\n",
        "files: missing path": _sub('path = "a.bin"\n', ""),
        "digest: listed twice": _sub('source = "card" }]', f'source = "card" }}, {{ alg = "md5", hex = "{MD5}", '
                                                             f'source = "card" }}]'),
        "digest: undeclared source": _sub('source = "card" }', 'source = "blog" }'),
        "digest: unknown field": _sub('source = "card" }', 'source = "card", note = "x" }'),
        "top: unknown key": _sub("schema = 1", "schema = 1\ncolour = 2"),
        "top: schema missing": _sub("schema = 1\n", ""),
        "top: schema 2": _sub("schema = 1", "schema = 2"),
        "top: name with a slash trick": _sub('name = "m"', 'name = "../../m"'),
        "top: repo without org": _sub('repo = "org/m"', 'repo = "m"'),
        "top: revision with ..": _sub('revision = "main"', 'revision = "a..b"'),
        "top: commit not hex": _sub('revision = "main"', 'revision = "main"\ncommit = "zzzzzzz"'),
    }
    for i, name in enumerate(HOSTILE_NAMES):
        import json

        m[f"path: {name[:24]!r}"] = GOOD.replace('path = "a.bin"', f"path = {json.dumps(name)}", 1)
    return m
