"""Writing manifests: from the hub at a pinned commit, from local files, and pinning old ones.

A manifest written here records only what a source actually said: the hub's listing (sizes, LFS
sha256, git blob ids), the checksums the publisher printed in the card (or another text), and
the digests an OpenSSF model signature signed. Anything that could not be imported, or that two
sources disagree on, is kept as a finding and written into the manifest's notes, so a reader of
the file sees it too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from . import catalog
from . import manifest as mf
from .cache import Cache
from .cards import Finding, import_digests
from .concurrency import verify_jobs
from .errors import HubMismatchError, NoHubAPI, NotFound, UsageError
from .fsutil import atomic_write
from .hashing import hash_file
from .records import Records
from .sources.base import Published

if TYPE_CHECKING:  # the HTTP stack loads only when a hub is asked
    from .sources.base import RemoteEntry, Source

CARD_FILE = "README.md"
#: a card is read whole up to this bound (the largest real cards are a few MB); past it, a finding
#: says how many bytes were not read, so a digest there is never dropped silently.
MAX_CARD_BYTES = 64 * 1024 * 1024
#: When two sources give the same algorithm, the one listed first is kept (and any
#: disagreement becomes a finding): a signature or a publisher's word is what a pull must hold
#: the hub to, not the other way round.
PRIORITY = ("oms-signature", "card-file", "card", "local", "hub-lfs", "hub-git")


@dataclass(frozen=True)
class Authored:
    """A manifest just written, and what its sources said that it could not hold."""

    manifest: mf.Manifest
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class ExtraText:
    """A text with checksums besides the repo's own card (``--card FILE``: a release note)."""

    name: str
    text: str


def _rank(source: str) -> int:
    return PRIORITY.index(source) if source in PRIORITY else len(PRIORITY)


def merge(entry: mf.FileEntry, extra: Iterable[mf.Digest]) -> tuple[mf.FileEntry, list[Finding]]:
    """``entry`` with ``extra`` digests added; one digest per algorithm, by source priority."""
    by_alg = {d.alg: d for d in entry.digests}
    findings = []
    for d in extra:
        old = by_alg.get(d.alg)
        if old is None:
            by_alg[d.alg] = d
            continue
        keep, drop = (d, old) if _rank(d.source) < _rank(old.source) else (old, d)
        if old.hex != d.hex:
            findings.append(Finding("disagree", entry.path,
                                    f"{entry.path}: {d.alg} from {keep.source} ({keep.hex}) differs from "
                                    f"{drop.source} ({drop.hex}); kept {keep.source}, so a pull fails unless "
                                    f"the bytes match it"))
        by_alg[d.alg] = keep
    return replace(entry, digests=tuple(by_alg.values())), findings


def fetch_card(source: Source, repo: str, commit: str, path: str = CARD_FILE,
               size: int | None = None) -> tuple[str, Finding | None]:
    """The model card at ``commit``, read from the source like any of its files (no more than
    ``MAX_CARD_BYTES`` is ever held), and a finding when it is longer than that: ``size`` is its
    length in the listing, to say how much was not read."""
    body = source.read_small(repo, commit, path, limit=MAX_CARD_BYTES + 1)
    if body is None:
        raise NotFound(f"{repo}@{commit}: {path}: listed, but the source does not serve it")
    cut = None
    if len(body) > MAX_CARD_BYTES:
        rest = (f"the last {size - MAX_CARD_BYTES} of its {size} bytes were" if size and size > MAX_CARD_BYTES
                else "everything after them was")
        cut = Finding("card-cut", path, f"{path}: longer than the {MAX_CARD_BYTES} bytes read for checksums: "
                                        f"{rest} not read, so a digest there was not imported")
    return body[:MAX_CARD_BYTES].decode("utf-8", errors="replace"), cut


def _cached_dirs(cache: Cache, repo: str, commit: str, names: Sequence[str]) -> list[Path]:
    """Cache directories that hold ``repo`` at ``commit``: under its repo id, or a manifest name."""
    out = []
    for n in dict.fromkeys(names):
        try:
            d = cache.model_dir(n, commit)
        except (UsageError, ValueError):
            continue
        if d.is_dir():
            out.append(d)
    for found in cache.model_dirs(revision=commit):  # pulled under a manifest name
        if found.path not in out and Records(cache.records_path(found.slug, commit)).model().repo == repo:
            out.append(found.path)
    return out


def cache_disagreements(cache: Cache, repo: str, commit: str, names: Sequence[str],
                        published: dict[str, tuple[mf.Digest, ...]], jobs: int | None = None) -> list[Finding]:
    """Published digests that the verified bytes already in the cache do not have."""
    dirs = _cached_dirs(cache, repo, commit, names)
    work = []
    for path, digests in published.items():
        for d in dirs:
            if (d / path).is_file():
                work.append((path, d / path, digests))
                break

    def one(item):
        path, full, digests = item
        actual = hash_file(full, [d.alg for d in digests])
        return [Finding("cache-disagrees", path,
                        f"{path}: the cached file (verified at pull) has {d.alg} {actual[d.alg]}, but the "
                        f"{d.source} says {d.hex}: the published checksum and the uploaded bytes disagree")
                for d in digests if actual[d.alg] != d.hex]

    with ThreadPoolExecutor(max_workers=verify_jobs(len(work), jobs)) as pool:
        return [f for found in pool.map(one, work) for f in found]


def from_hub(source: Source, repo: str, revision: str | None = None, name: str | None = None,
             extra: Sequence[ExtraText] = (), cache: Cache | None = None, read_card: bool = True) -> Authored:
    """A manifest of ``repo`` at the full commit ``revision`` resolves to, with every checksum
    its card (and ``extra`` texts) publishes."""
    rev = revision or "main"
    commit, entries = _listed(source, repo, rev)
    name = name or repo.split("/")[-1]
    try:
        mf.check_name(name)
    except ValueError as e:
        raise UsageError(f"--name {name!r}: {e}") from None
    files = [catalog.hub_entry(repo, commit, e) for e in entries]
    sources = {d.source: catalog.HUB_SOURCES[d.source] for f in files for d in f.digests}
    if not files:
        raise UsageError(f"{repo}@{commit}: the repository has no files")
    paths = [f.path for f in files]
    findings: list[Finding] = []
    published: dict[str, list[mf.Digest]] = {}
    texts = []
    if read_card and CARD_FILE in paths:
        listed = next((f.size for f in files if f.path == CARD_FILE), None)
        card, cut = fetch_card(source, repo, commit, size=listed)
        findings += [cut] if cut else []
        texts.append(("card", f"{CARD_FILE} at the pinned commit", card,
                      f"checksums published in the model card ({CARD_FILE} at the pinned commit)"))
    for x in extra:
        texts.append(("card-file", x.name, x.text, f"checksums published in {x.name}"))
    for said_by, where, text, description in texts:
        imported = import_digests(text, paths, source=said_by, where=where)
        findings += imported.findings
        if imported.digests:
            sources[said_by] = description
        for path, ds in imported.digests.items():
            published.setdefault(path, []).extend(ds)
    merged = []
    for f in files:
        f2, found = merge(f, published.get(f.path, ()))
        merged.append(f2)
        findings += found
    if cache is not None:
        card_only = {p: tuple(d for d in ds if d.source in ("card", "card-file")) for p, ds in published.items()}
        findings += cache_disagreements(cache, repo, commit, [name, repo], {p: d for p, d in card_only.items() if d})
    notes = [f"Written by `weightsafe manifest create` from {source.endpoint} at {rev}."]
    notes += [f.message for f in findings]
    m = mf.Manifest(name=name, repo=repo, revision=commit, files=tuple(merged), sources=sources,
                    description=f"{repo} at {commit}", notes=tuple(notes))
    return Authored(validated(m), tuple(findings))


def add_signed(made: Authored, signed: dict[str, mf.Digest], description: str) -> Authored:
    """``made`` with the digests a verified signature signs merged in (source oms-signature)."""
    m = made.manifest
    paths = {f.path for f in m.files}
    found = [Finding("unknown-file", p, f"signature: {p} is signed but not among the files described; "
                                        f"not imported") for p in sorted(set(signed) - paths)]
    files = []
    for f in m.files:
        f2, disagree = merge(f, [signed[f.path]] if f.path in signed else [])
        files.append(f2)
        found += disagree
    new = replace(m, files=tuple(files), sources={**m.sources, "oms-signature": description},
                  notes=m.notes + tuple(x.message for x in found))
    return Authored(validated(new), made.findings + tuple(found))


def local_files(directory: Path, skip: Iterable[Path] = ()) -> list[str]:
    """Every regular file under ``directory`` as a relative POSIX path (not .git, not .cache)."""
    skip_real = {os.path.realpath(p) for p in skip}
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in (".git", ".cache"))
        for n in sorted(names):
            full = os.path.join(root, n)
            if os.path.realpath(full) in skip_real or not os.path.isfile(full) or os.path.islink(full):
                continue
            found.append(os.path.relpath(full, directory).replace(os.sep, "/"))
    return found


def from_dir(directory: str | Path, name: str, repo: str | None = None, revision: str = "local",
             algs: Sequence[str] = ("sha256",), jobs: int | None = None, skip: Iterable[Path] = ()) -> Authored:
    """A manifest of the files in ``directory`` (a model that never came from a hub)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"--dir {directory}: not a directory")
    for a in algs:
        if a not in mf.ALGORITHMS or a == "git-sha1":
            raise UsageError(f"--alg {a!r}: one of md5, sha1, sha256, sha512")
    try:
        mf.check_name(name)
    except ValueError as e:
        raise UsageError(f"--name {name!r}: {e}") from None
    paths = local_files(directory, skip)
    if not paths:
        raise UsageError(f"--dir {directory}: no files")
    for p in paths:
        try:
            mf.check_relpath(p)
        except ValueError as why:
            raise UsageError(f"--dir {directory}: {p!r} cannot be in a manifest: {why}") from None

    def one(path: str) -> mf.FileEntry:
        full = directory / path
        size = full.stat().st_size
        actual = hash_file(full, algs, size)
        return mf.FileEntry(path, size, tuple(mf.Digest(a, actual[a], "local") for a in algs))

    with ThreadPoolExecutor(max_workers=verify_jobs(len(paths), jobs)) as pool:
        files = tuple(pool.map(one, paths))
    m = mf.Manifest(name=name, repo=repo or f"local/{name.split('/')[-1]}", revision=revision, files=files,
                    sources={"local": f"computed by `weightsafe manifest create --dir` from the files in {directory}"},
                    description=f"local files of {name}",
                    notes=("Digests were computed from local files: they prove the files are unchanged since, "
                           "not that they are what a publisher released.",))
    return Authored(validated(m))


def pin(m: mf.Manifest, source: Source, revision: str | None = None) -> tuple[mf.Manifest, list[str]]:
    """``m`` at the full commit its revision (or ``revision``) resolves to now, with sizes and
    hub digests filled.

    A digest or size in ``m`` that the hub contradicts stops the pin (HubMismatchError): the
    manifest was written for other bytes, and silently rewriting it would hide that. A short
    ``commit`` the branch has moved past is not an error when every digest still agrees (later
    commits often touch only the card); the pin says so in the notes.
    """
    asked = revision or m.revision
    commit, entries = _listed(source, m.repo, asked)
    moved = bool(m.commit) and not commit.startswith(m.commit or "")
    listed = {e.path: e for e in entries}
    missing = [f.path for f in m.files if f.path not in listed]
    if missing:
        raise HubMismatchError(f"{m.origin}: {m.repo}@{commit} has no {', '.join(missing[:5])}"
                               + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
    changes, files, sources = [], [], dict(m.sources)
    for f in m.files:
        e = listed[f.path]
        hub = catalog.hub_entry(m.repo, commit, e).digests
        for d in hub:
            mine = f.digest(d.alg)
            if mine and mine.hex != d.hex:
                raise HubMismatchError(f"{m.origin}: {f.path}: {d.alg} from {mine.source} is {mine.hex}, "
                                       f"the hub has {d.hex} at {commit}")
        if f.size is not None and e.size is not None and f.size != e.size:
            raise HubMismatchError(f"{m.origin}: {f.path}: size {f.size} in the manifest, {e.size} on the hub")
        added = [d for d in hub if not f.digest(d.alg)]
        for d in added:
            sources.setdefault(d.source, catalog.HUB_SOURCES[d.source])
            changes.append(f"{f.path}: added {d.alg} from {d.source}")
        size = f.size if f.size is not None else e.size
        if size != f.size:
            changes.append(f"{f.path}: size {size}")
        files.append(replace(f, size=size, size_approx=None if size is not None else f.size_approx,
                             digests=f.digests + tuple(added)))
    notes = m.notes
    if m.revision != commit:
        changes.insert(0, f"revision {m.revision} -> {commit}")
        notes += (f"Pinned by `weightsafe manifest pin` from {source.endpoint}: {asked} was {commit}.",)
    if moved:
        changes.insert(1, f"commit {m.commit} dropped: {asked} is now {commit}")
        notes += (f"The manifest named commit {m.commit}; {asked} had moved on to {commit}, where every digest "
                  f"the manifest listed still agreed.",)
    pinned = replace(m, revision=commit, commit=None if moved else m.commit, files=tuple(files),
                     sources=sources, notes=notes)
    return validated(pinned), changes


def _listed(source: Source, repo: str, revision: str) -> tuple[str, tuple[RemoteEntry, ...]]:
    """The hub's own listing: a manifest is written from what the hub says, never from what a
    mirror republishes."""
    listing = source.listing(repo, revision)
    if isinstance(listing, Published):
        raise NoHubAPI(listing.why)
    return listing.commit, listing.entries


def validated(m: mf.Manifest) -> mf.Manifest:
    """``m`` as ``parse`` would read it back: what is written is always loadable."""
    return replace(mf.parse(mf.to_toml(m), m.origin), origin=m.origin)


def write(m: mf.Manifest, path: str | Path) -> None:
    """Write ``m`` to ``path`` atomically (a reader sees the old file or the new one)."""
    atomic_write(Path(path), mf.to_toml(validated(m)).encode())


def read_texts(paths: Iterable[str]) -> list[ExtraText]:
    out = []
    for p in paths:
        try:
            out.append(ExtraText(Path(p).name, Path(p).read_text(encoding="utf-8", errors="replace")))
        except OSError as e:
            raise UsageError(f"--card {p}: {e.strerror or e}") from None
    return out

