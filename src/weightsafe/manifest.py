"""Manifests: what a model is made of and how each file's bytes are known to be right.

A manifest is TOML a person can read and diff (schema in docs/manifest.md). Parsing is strict:
unknown keys, bad hex, unsafe paths and duplicates are rejected with the file, the field and the
reason, because a typo in a manifest must never turn into a silently unchecked file.
"""

from __future__ import annotations

import re
import unicodedata
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .errors import ManifestError
from .text import escape

SCHEMA_VERSION = 1

#: Algorithm name -> length of its hex digest. ``git-sha1`` is git's blob id:
#: sha1 over ``b"blob <size>\0" + content``, what the hub reports for non-LFS files.
ALGORITHMS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128, "git-sha1": 40}

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
FULL_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
HEX_RE = re.compile(r"^[0-9a-f]+$")
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_PATH = 1024
#: deepest nesting of arrays and inline tables a manifest may have (it needs 2: files -> digests).
#: tomllib recurses once per level, so text nested 100,000 deep would exhaust the stack.
MAX_NESTING = 32
_TOML_TOKEN = re.compile(r"\"\"\"|'''|[\"'#\[\]{}]")
MAX_COMPONENT = 255
WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|conin\$|conout\$|com[\d\u00b9\u00b2\u00b3]|lpt[\d\u00b9\u00b2\u00b3])"
                              r"( *\..*)?$", re.IGNORECASE)
WINDOWS_FORBIDDEN = set('<>"|?*')


@dataclass(frozen=True)
class Digest:
    """One expected digest of a file, and where that expectation came from."""

    alg: str
    hex: str
    source: str

    def __str__(self) -> str:
        return f"{self.alg}:{self.hex}"


@dataclass(frozen=True)
class FileEntry:
    """A file of the model: its path inside the model directory, size and digests.

    ``size`` is None when no exact size is known; ``size_approx`` is the hub page's rounded
    figure, used only to estimate disk space, never to judge a file.
    """

    path: str
    size: int | None = None
    digests: tuple[Digest, ...] = ()
    size_approx: int | None = None

    def digest(self, alg: str) -> Digest | None:
        return next((d for d in self.digests if d.alg == alg), None)

    def supplemented(self, extra: Iterable[Digest]) -> tuple[Digest, ...]:
        """These digests, plus those of ``extra`` (say the hub's) for algorithms the manifest lacks."""
        out = list(self.digests)
        for d in extra:
            if not any(x.alg == d.alg for x in out):
                out.append(d)
        return tuple(out)


@dataclass(frozen=True)
class Manifest:
    """A model: hub repo, pinned revision and its files. ``origin`` says where it was read."""

    name: str
    repo: str
    revision: str
    files: tuple[FileEntry, ...]
    sources: dict[str, str] = field(default_factory=dict)
    commit: str | None = None
    description: str = ""
    notes: tuple[str, ...] = ()
    origin: str = "<memory>"

    @property
    def pinned(self) -> bool:
        return bool(FULL_COMMIT_RE.match(self.revision))

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def select(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> "Manifest":
        """The same manifest restricted to files matching any include and no exclude glob."""
        include, exclude = tuple(include), tuple(exclude)
        return replace(self, files=tuple(f for f in self.files if selected(f.path, include, exclude)))

    @property
    def known_bytes(self) -> int:
        return sum(f.size or f.size_approx or 0 for f in self.files)


def selected(path: str, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> bool:
    """Whether ``path`` matches any include glob (or there are none) and no exclude glob."""
    p = PurePosixPath(path)
    if include and not any(p.match(g) or path == g for g in include):
        return False
    return not any(p.match(g) or path == g for g in exclude)
#: what git's check-ref-format refuses in a ref name, plus C1 controls and whitespace: a hub can
#: have no branch, tag or commit named so, and no cache layout should have to spell one.
BAD_REVISION = re.compile(r"(^|/)\.|\.\.|[\s\x00-\x1f\x7f-\x9f~^:?*\[\\]|@\{|//|^/|/$|\.lock(/|$)|\.$|^@$")


def revision_problem(rev: Any) -> str | None:
    """Why ``rev`` cannot name a git branch, tag or commit (``.``, ``a:b``, controls), or None."""
    if not isinstance(rev, str) or not rev:
        return "empty"
    if len(rev) > 255:
        return "longer than 255 characters"
    if BAD_REVISION.search(rev) or not rev.isprintable():
        return "not a git ref name (see git check-ref-format)"
    return None


def check_relpath(path: Any, where: str = "path") -> str:
    """Return ``path`` if it is a safe relative POSIX path inside a model directory.

    Rejects anything that could land outside the cache or mean different things on different
    systems: absolute paths, ``..``, backslashes, drive letters, NUL and control characters,
    reserved Windows names, and over-long names. Raises ValueError with the reason.
    """
    if not isinstance(path, str):
        raise ValueError(f"{where} must be a string")
    if not path:
        raise ValueError(f"{where} is empty")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise ValueError(f"{where} is longer than {MAX_PATH} bytes")
    if any(ord(c) < 32 or 127 <= ord(c) <= 159 or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        raise ValueError(f"{where} contains a control character (C0 or C1), NUL or a lone surrogate")
    if WINDOWS_FORBIDDEN & set(path):
        raise ValueError(f"{where} contains a character Windows forbids in file names (<>\"|?*)")
    if "\\" in path:
        raise ValueError(f"{where} contains a backslash")
    if ":" in path:
        raise ValueError(f"{where} contains ':' (drive letter or stream name)")
    if path.startswith("/"):
        raise ValueError(f"{where} is absolute")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"{where} has an empty, '.' or '..' component")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT:
            raise ValueError(f"{where} has a component longer than {MAX_COMPONENT} bytes")
        if WINDOWS_RESERVED.match(part) or part.endswith((" ", ".")):
            raise ValueError(f"{where} has a component that is not portable: {part!r}")
    return path


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ValueError("must be letters, digits, '.', '_' or '-', optionally ORG/NAME")
    return name


def parse(text: str | bytes, origin: str = "<manifest>") -> Manifest:
    """Parse and validate manifest TOML text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(origin, "file", f"not UTF-8 ({e.reason} at byte {e.start})") from None
    if too_deep := _nesting_beyond(text, MAX_NESTING):
        raise ManifestError(origin, "toml", f"arrays or inline tables nested more than {MAX_NESTING} deep "
                                            f"(line {too_deep}); a manifest needs 2")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(origin, "toml", str(e)) from None
    except RecursionError:  # unreachable after the pre-scan; kept so no input can crash a caller
        raise ManifestError(origin, "toml", "nested too deeply") from None
    return _Validator(origin).manifest(data)


def _nesting_beyond(text: str, limit: int) -> int | None:
    """The line where ``[``/``{`` nesting outside strings and comments first exceeds ``limit``, or
    None. A linear scan (string methods and one flat pattern), so nothing recursive ever runs on
    hostile text; strings are skipped as TOML reads them (a single-line string ends at its line)."""
    depth, pos, end, newline = 0, 0, len(text), -1
    while m := _TOML_TOKEN.search(text, pos):
        tok, pos = m.group(), m.end()
        if newline < pos:  # the next line end, found once per line however many strings it holds
            newline = text.find("\n", pos)
            newline = end if newline < 0 else newline
        if tok in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, pos) + 1
        elif tok in "]}":
            depth = max(0, depth - 1)
        elif tok == "#":
            pos = newline
        elif len(tok) == 3:  # a multi-line string runs to its closing quotes (and up to 2 more)
            pos = _closing(text, pos, tok, escapes=tok == '"""', line_end=end)
            for _ in range(2):
                pos += text.startswith(tok[0], pos)
        else:
            pos = _closing(text, pos, tok, escapes=tok == '"', line_end=newline)
    return None


def _closing(text: str, pos: int, quote: str, escapes: bool, line_end: int) -> int:
    """The position after the ``quote`` that closes a string opened before ``pos`` (in a basic
    string, one not escaped by an odd run of backslashes), or ``line_end`` if none comes before it."""
    while True:
        at = text.find(quote, pos, line_end)
        if at < 0:
            return line_end
        run = at
        while escapes and run > pos and text[run - 1] == "\\":
            run -= 1
        if (at - run) % 2 == 0:
            return at + len(quote)
        pos = at + 1


def load(path: str | Path) -> Manifest:
    """Read and validate the manifest at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(str(path), "file", e.strerror or str(e)) from None
    return parse(raw, str(path))


class _Validator:
    """Walks the TOML document, raising ManifestError at the first field that is wrong."""

    TOP = {"schema", "name", "repo", "revision", "commit", "description", "notes", "sources", "files"}
    FILE = {"path", "size", "size_approx", "digests"}
    DIGEST = {"alg", "hex", "source"}

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, fld: str, reason: str) -> ManifestError:
        return ManifestError(self.origin, fld, reason)

    def unknown(self, table: dict, allowed: set, prefix: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise self.fail(f"{prefix}{escape(extra[0])}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def string(self, table: dict, key: str, fld: str, required: bool = True) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(fld, "missing" if value is None else "must be a non-empty string")
        return value

    def size(self, value: Any, fld: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(fld, f"must be an integer number of bytes, got {type(value).__name__}")
        if value < 0:
            raise self.fail(fld, f"must not be negative, got {value}")
        return value

    def manifest(self, data: dict) -> Manifest:
        self.unknown(data, self.TOP, "")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise self.fail("schema", f"must be {SCHEMA_VERSION}, got {schema!r}")
        name = self.string(data, "name", "name")
        try:
            check_name(name)
        except ValueError as e:
            raise self.fail("name", f"{name!r} {e}") from None
        repo = self.string(data, "repo", "repo")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$", repo) or ".." in repo:
            raise self.fail("repo", f"{repo!r} is not ORG/NAME")
        revision = self.string(data, "revision", "revision")
        if revision_problem(revision):
            raise self.fail("revision", f"{revision!r} is not a valid git revision: {revision_problem(revision)}")
        commit = self.string(data, "commit", "commit", required=False)
        if commit is not None and not re.match(r"^[0-9a-f]{7,40}$", commit):
            raise self.fail("commit", f"{commit!r} must be 7 to 40 lowercase hex digits")
        if commit and FULL_COMMIT_RE.match(revision) and not revision.startswith(commit):
            raise self.fail("commit", f"{commit!r} contradicts revision {revision!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string")
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise self.fail("notes", "must be a list of strings")
        sources = self.sources(data.get("sources", {}))
        files = self.files(data.get("files"), sources)
        return Manifest(name=name, repo=repo, revision=revision, commit=commit, files=files,
                        sources=sources, description=description, notes=tuple(notes),
                        origin=self.origin)

    def sources(self, table: Any) -> dict[str, str]:
        if not isinstance(table, dict):
            raise self.fail("sources", "must be a table of source-id = \"description\"")
        for key, text in table.items():
            if not SOURCE_RE.match(key):
                raise self.fail(f"sources.{escape(key)}", "id must be lowercase letters, digits, '.', '_', '-'")
            if not isinstance(text, str) or not text.strip():
                raise self.fail(f"sources.{key}", "must be a non-empty description string")
        return dict(table)

    def files(self, items: Any, sources: dict[str, str]) -> tuple[FileEntry, ...]:
        if not isinstance(items, list) or not items:
            raise self.fail("files", "must be a non-empty array of [[files]] tables")
        seen: dict[str, int] = {}
        entries = []
        for i, item in enumerate(items):
            entry = self.file(item, i, sources)
            key = unicodedata.normalize("NFC", entry.path).casefold()  # NFD twins are one file on macOS
            if key in seen:
                raise self.fail(f"files[{i}].path", f"{entry.path!r} duplicates files[{seen[key]}]")
            seen[key] = i
            entries.append(entry)
        for entry in entries:
            parts = entry.path.split("/")
            for n in range(1, len(parts)):
                prefix = "/".join(parts[:n]).casefold()
                if prefix in seen:
                    raise self.fail(f"files[{seen[prefix]}].path",
                                    f"{prefix!r} is both a file and a directory of {entry.path!r}")
        return tuple(entries)

    def file(self, item: Any, i: int, sources: dict[str, str]) -> FileEntry:
        at = f"files[{i}]"
        if not isinstance(item, dict):
            raise self.fail(at, "must be a table")
        self.unknown(item, self.FILE, f"{at}.")
        path = item.get("path")
        try:
            check_relpath(path, "path")
        except ValueError as e:
            raise self.fail(f"{at}.path", f"{path!r}: {e}") from None
        size = self.size(item.get("size"), f"{at}.size")
        approx = self.size(item.get("size_approx"), f"{at}.size_approx")
        raw = item.get("digests", [])
        if not isinstance(raw, list):
            raise self.fail(f"{at}.digests", "must be an array of {alg, hex, source} tables")
        digests = []
        for j, d in enumerate(raw):
            digest = self.digest(d, f"{at}.digests[{j}]", sources)
            if any(x.alg == digest.alg for x in digests):
                raise self.fail(f"{at}.digests[{j}].alg", f"{digest.alg} is listed twice")
            digests.append(digest)
        return FileEntry(path=path, size=size, digests=tuple(digests), size_approx=approx)

    def digest(self, d: Any, at: str, sources: dict[str, str]) -> Digest:
        if not isinstance(d, dict):
            raise self.fail(at, "must be a table {alg, hex, source}")
        self.unknown(d, self.DIGEST, f"{at}.")
        alg = self.string(d, "alg", f"{at}.alg")
        if alg not in ALGORITHMS:
            raise self.fail(f"{at}.alg", f"unknown algorithm {alg!r} (known: {', '.join(ALGORITHMS)})")
        hexd = self.string(d, "hex", f"{at}.hex")
        if not HEX_RE.match(hexd):
            raise self.fail(f"{at}.hex", f"{hexd!r} is not lowercase hex")
        if len(hexd) != ALGORITHMS[alg]:
            raise self.fail(f"{at}.hex", f"{alg} needs {ALGORITHMS[alg]} hex digits, got {len(hexd)}")
        source = self.string(d, "source", f"{at}.source")
        if source not in sources:
            raise self.fail(f"{at}.source", f"{source!r} is not declared in [sources]")
        return Digest(alg, hexd, source)


def to_toml(m: Manifest) -> str:
    """Serialise a manifest in the schema ``parse`` reads (used to record pinned pulls)."""
    import tomli_w

    doc: dict[str, Any] = {"schema": SCHEMA_VERSION, "name": m.name, "repo": m.repo,
                           "revision": m.revision}
    if m.commit:
        doc["commit"] = m.commit
    if m.description:
        doc["description"] = m.description
    if m.notes:
        doc["notes"] = list(m.notes)
    doc["sources"] = dict(m.sources)
    files = []
    for f in m.files:
        item: dict[str, Any] = {"path": f.path}
        if f.size is not None:
            item["size"] = f.size
        if f.size_approx is not None:
            item["size_approx"] = f.size_approx
        item["digests"] = [{"alg": d.alg, "hex": d.hex, "source": d.source} for d in f.digests]
        files.append(item)
    doc["files"] = files
    return tomli_w.dumps(doc)
