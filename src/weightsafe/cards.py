"""Checksums a publisher wrote in prose: model cards, release notes, checksum files.

Publishers write digests in many shapes (markdown tables in any column order, ``md5sum`` and
``sha256sum`` output, BSD ``MD5 (file) = hex`` lines, ``file: hex`` lists under a heading that
names the algorithm). A card is untrusted text written by hand, so nothing it says is dropped
quietly: a digest for a file the repo does not have, two different digests for one file, or a
hex string whose length contradicts the algorithm its context names each become a ``Finding``.

The text is hostile too: every line is parsed in time linear in its length (the patterns have no
two quantifiers that can take the same characters, and a line is stripped before they run; the
``name: hex`` form is taken apart with string methods), and a line longer than ``MAX_LINE`` is not
parsed at all; when it holds something digest-like that is a finding, not a silence. Names in
findings are shown escaped (``manifest.printable``): a card may hold terminal control sequences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

from .manifest import Digest
from .text import escape

#: hex length -> algorithm. 40 hex digits are also git commit and blob ids, so sha1 is taken
#: only where the context names it (a heading, column, label or ``sha1sum`` line).
BY_LENGTH = {32: "md5", 64: "sha256", 128: "sha512"}
LENGTH = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
ALG_WORD = re.compile(r"(?<![a-z0-9])(md5|sha-?1|sha-?256|sha-?512)(?:sum)?(?![a-z0-9])", re.I)
HEX = r"[0-9a-fA-F]{32,128}"
HEX_DIGITS = "0123456789abcdefABCDEF"
HEX_ONLY = re.compile(rf"^(?:(?:md5|sha-?1|sha-?256|sha-?512):)?{HEX}$", re.I)  # `sha256:HEX` too
# (on a stripped line) `HEX  name` or `HEX *name` (coreutils), optionally in backticks or after a list bullet
SUM_LINE = re.compile(rf"(?:[-*+]\s+)?`?(?P<hex>{HEX})`?(?P<sep>\s+\*?)`?(?P<name>[^\s`*][^`]*?)`?$")
# (on a stripped line) MD5 (name) = HEX  (BSD / `shasum --tag`)
BSD_LINE = re.compile(rf"(?P<alg>MD5|SHA-?1|SHA-?256|SHA-?512)\s*\((?P<name>[^)]+)\)\s*=\s*(?P<hex>{HEX})$", re.I)
# `name: HEX`, `name = HEX`, `**name** — HEX`, `name (sha256): HEX`, `name: md5 HEX`: see _label_line
LABEL_SEPARATORS = ("->", ":", "=", "\u2014", "\u2013")
LABEL_ALG = re.compile(r"(?<![A-Za-z0-9])(md5|sha-?1|sha-?256|sha-?512)$", re.I)
NAME_FORBIDDEN = set(":=`*|")
HEADING = re.compile(r"^\s{0,3}(#{1,6}\s+.*|\*\*[^*]+\*\*:?\s*|[^|`]{1,80}:\s*)$")
# a shell command running a checksum tool names the algorithm of the lines it printed
TOOL_LINE = re.compile(r"(?:[$>%#]\s*)?(?:(md5|sha1|sha256|sha512)sum|shasum\s+-a\s*(1|256|512))(?![a-z0-9])", re.I)
#: longest line parsed for digests: a digest line is at most ~1.3k characters (a 1024-byte path,
#: 128 hex digits, markup); longer lines (inline images, minified HTML) are skipped, and reported
#: when they hold a run of hex digits that could have been a digest.
MAX_LINE = 4096
DIGEST_LIKE = re.compile(r"[0-9a-fA-F]{32}")


def alg_name(word: str) -> str:
    return word.lower().replace("-", "").removesuffix("sum")


@dataclass(frozen=True)
class CardDigest:
    """One digest a text publishes: the file name as written, the algorithm and the line."""

    name: str
    alg: str
    hex: str
    line: int


@dataclass(frozen=True)
class Finding:
    """Something in a card that could not become a digest, or that contradicts another."""

    kind: str      # "unknown-file", "conflict", "bad-length", "ambiguous-file", "long-line"
    name: str
    message: str


@dataclass(frozen=True)
class CardImport:
    """Digests by repo path (already deduplicated) and everything that was not imported."""

    digests: dict[str, tuple[Digest, ...]]
    findings: tuple[Finding, ...]

    @property
    def count(self) -> int:
        return sum(len(d) for d in self.digests.values())


def _clean_name(raw: str) -> str:
    name = raw.strip().strip("`*_\"'").strip()
    name = re.sub(r"^\[([^\]]+)\]\([^)]*\)$", r"\1", name)  # [file](link)
    return name.removeprefix("./")


def _label_line(line: str) -> tuple[str, str | None, str] | None:
    """(name, algorithm named on the line or None, hex) of a ``name: HEX`` line, else None.

    Taken apart from the right with string methods, in time linear in the line: the hex digits
    (in optional backticks), an optional algorithm word (``md5``, ``sha256:``), the separator, an
    optional ``(alg)``, then the name without its list bullet and emphasis marks."""
    s = line.strip().removesuffix("`")
    rest = s.rstrip(HEX_DIGITS)
    hexd = s[len(rest):]
    if not 32 <= len(hexd) <= 128:
        return None
    rest = rest.removesuffix("`").rstrip()
    named = None
    head = rest[:-1].rstrip() if rest.endswith((":", "=")) else rest
    if m := LABEL_ALG.search(head[-8:]):  # `md5 HEX`, `sha256: HEX`, `sha-1=HEX`
        before = head[:len(head) - len(m.group(1))].rstrip()
        if before.endswith(LABEL_SEPARATORS):
            named, rest = m.group(1), before
    sep = next((x for x in LABEL_SEPARATORS if rest.endswith(x)), None)
    if sep is None:
        return None
    rest = rest[:-len(sep)].rstrip()
    if rest.endswith(")") and "(" in rest:
        i = rest.rindex("(")
        inner = rest[i + 1:-1]
        if inner and all(c.isascii() and (c.isalnum() or c == "-") for c in inner):
            if named is None and ALG_WORD.fullmatch(inner):
                named = inner
            rest = rest[:i].rstrip()
    rest = rest.rstrip("*_`").rstrip()
    if rest[:1] in ("-", "*", "+"):
        rest = rest[1:]
    elif rest[:1].isdigit():
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if rest[digits:digits + 1] in (".", ")"):
            rest = rest[digits + 1:]
    name = rest.lstrip().lstrip("*_`")
    if not name or name[0].isspace() or NAME_FORBIDDEN & set(name):
        return None
    return name, named, hexd


def _decide(hexd: str, context: str | None) -> tuple[str | None, str | None]:
    """(algorithm, problem) for a hex string given the algorithm its context names, if any."""
    if context:
        if LENGTH[context] == len(hexd):
            return context, None
        by_len = BY_LENGTH.get(len(hexd))
        return None, (f"{len(hexd)} hex digits cannot be {context}"
                      + (f" (it would be {by_len} by its length)" if by_len else ""))
    return BY_LENGTH.get(len(hexd)), None  # 40 digits alone are more likely a commit id


class _Scanner:
    def __init__(self) -> None:
        self.found: list[CardDigest] = []
        self.problems: list[Finding] = []
        self.section: str | None = None   # algorithm named by the last heading or label line
        self.columns: list[str | None] | None = None  # algorithm named by each table column

    def add(self, name: str, hexd: str, context: str | None, line: int) -> None:
        name = _clean_name(name)
        if not name or HEX_ONLY.match(name):
            return
        alg, problem = _decide(hexd, context)
        if problem:
            self.problems.append(Finding("bad-length", name, f"line {line}: {escape(name)}: {problem}; "
                                                             f"not imported"))
        elif alg:
            self.found.append(CardDigest(name, alg, hexd.lower(), line))

    def table_row(self, cells: list[str], n: int) -> None:
        if all(re.fullmatch(r":?-{2,}:?", c.strip()) or not c.strip() for c in cells):
            return
        stripped = [c.strip().strip("`").strip() for c in cells]
        if self.columns is None:
            self.columns = [alg_name(m.group(1)) if (m := ALG_WORD.search(c)) else None for c in cells]
            if not any(HEX_ONLY.match(c) for c in stripped):
                return
            self.columns = [None] * len(cells)
        hexes = [(i, c) for i, c in enumerate(stripped) if HEX_ONLY.match(c)]
        names = [c for i, c in enumerate(stripped) if c and not HEX_ONLY.match(c) and "." in c
                 and " " not in c]
        if not hexes or not names:
            return
        for i, cell in hexes:
            col = self.columns[i] if i < len(self.columns) else None
            tag, _, hexd = cell.rpartition(":")
            self.add(names[0], hexd, alg_name(tag) if tag else col or self.section, n)

    def line(self, text: str, n: int) -> None:
        if len(text) > MAX_LINE:
            self.columns = None
            if DIGEST_LIKE.search(text):
                self.problems.append(Finding("long-line", f"line {n}",
                                             f"line {n}: {len(text)} characters (limit {MAX_LINE}) holding hex "
                                             f"digits: not read for checksums; a digest on it was not imported"))
            return
        if text.lstrip().startswith("|"):
            self.table_row(text.strip().strip("|").split("|"), n)
            return
        self.columns = None
        stripped = text.strip()
        if m := BSD_LINE.match(stripped):
            self.add(m["name"], m["hex"], alg_name(m["alg"]), n)
        elif m := SUM_LINE.match(stripped):
            # `HEX *name` is coreutils' binary mode: only sha1sum prints 40 hex digits so (a commit
            # id is never written with the `*`), so the line names sha1 where nothing else does
            binary = m["sep"].endswith("*") and len(m["hex"]) == LENGTH["sha1"]
            self.add(m["name"], m["hex"], self.section or ("sha1" if binary else None), n)
        elif label := _label_line(stripped):
            name, named, hexd = label
            self.add(name, hexd, alg_name(named) if named else self.section, n)
        elif m := TOOL_LINE.match(stripped):
            self.section = alg_name(m.group(1) or f"sha{m.group(2)}")
        elif HEADING.match(text):
            words = ALG_WORD.findall(text)
            algs = {alg_name(w) for w in words}
            if text.lstrip().startswith("#") or algs:
                self.section = algs.pop() if len(algs) == 1 else None


def scan(text: str) -> tuple[list[CardDigest], list[Finding]]:
    """Every digest ``text`` publishes, in order, and the hex strings it could not place."""
    s = _Scanner()
    fence_alg: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.lstrip().startswith("```"):
            info = raw.strip().strip("`").strip()
            m = ALG_WORD.search(info)
            fence_alg = alg_name(m.group(1)) if m else None
            if fence_alg:
                s.section = fence_alg
            continue
        s.line(raw, n)
    return s.found, s.problems


def _match(name: str, repo_files: list[str]) -> tuple[str | None, list[str]]:
    """The repo path a card's file name means: exact, or a unique basename."""
    if name in repo_files:
        return name, [name]
    base = PurePosixPath(name).name
    hits = [p for p in repo_files if PurePosixPath(p).name == base]
    return (hits[0] if len(hits) == 1 else None), hits


def import_digests(text: str, repo_files: Iterable[str] | None, source: str = "card",
                   where: str = "card") -> CardImport:
    """The digests ``text`` publishes for ``repo_files`` (any file when None), with findings.

    Identical repeats (a bilingual card with the table twice) are one digest; two different
    digests for one file and algorithm are a conflict and neither is imported.
    """
    found, problems = scan(text)
    files = list(repo_files) if repo_files is not None else None
    where = escape(where)
    findings = [Finding(p.kind, p.name, f"{where}: {p.message}") for p in problems]
    chosen: dict[tuple[str, str], CardDigest] = {}
    conflicted: set[tuple[str, str]] = set()
    for d in found:
        path = d.name
        if files is not None:
            path, hits = _match(d.name, files)
            if path is None:
                kind = "ambiguous-file" if hits else "unknown-file"
                why = f"matches {', '.join(hits)}" if hits else "is not in the repository"
                findings.append(Finding(kind, d.name, f"{where} line {d.line}: {d.alg} for {d.name!r}: "
                                                      f"the file {why}; not imported"))
                continue
        key = (path, d.alg)
        if key in conflicted:
            continue
        prior = chosen.get(key)
        if prior and prior.hex != d.hex:
            conflicted.add(key)
            del chosen[key]
            findings.append(Finding("conflict", path, f"{where}: {escape(path)}: {d.alg} {prior.hex} "
                                                      f"(line {prior.line}) "
                                                      f"contradicts {d.hex} (line {d.line}); neither imported"))
        elif not prior:
            chosen[key] = d
    out: dict[str, list[Digest]] = {}
    for (path, alg), d in chosen.items():
        out.setdefault(path, []).append(Digest(alg, d.hex, source))
    return CardImport({p: tuple(ds) for p, ds in out.items()}, tuple(findings))
