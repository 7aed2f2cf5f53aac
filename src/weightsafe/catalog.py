"""Finding the manifest a user means: by name, by path, or by hub repo id.

Search order for a name: ``--manifest PATH``; the directories in ``WEIGHTSAFE_MANIFEST_PATH``
(os.pathsep-separated); ``<user config dir>/weightsafe/manifests``; the manifests shipped in the
package (``Settings.manifest_dirs`` holds the first two). ``ORG/REPO[@REV]`` is not looked up there: its file list comes from the hub's API at
that revision and is pinned in the cache, so a later verify (or an offline pull) needs no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import manifest as mf
from .cache import Cache
from .errors import HubError, HubUnreachable, ManifestError, OfflineError, UsageError
from .pins import HUB_SOURCES, pinned, store_pin

if TYPE_CHECKING:
    from .sources.base import RemoteEntry, Source
def packaged_dir() -> Path:
    """Manifests inside the installed wheel, or the repository's top-level manifests/."""
    shipped = Path(__file__).resolve().parent / "manifests"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "manifests"


def search_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """``extra`` (the user's directories, from Settings) before the shipped manifests."""
    return [*extra, packaged_dir()]


def is_repo_spec(spec: str) -> bool:
    return "/" in spec.split("@", 1)[0]


def split_spec(spec: str) -> tuple[str, str | None]:
    repo, _, rev = spec.partition("@")
    try:
        mf.check_name(repo)
    except ValueError as e:
        raise UsageError(f"{spec!r}: a model is NAME or ORG/REPO[@REV]; {repo!r} {e}") from None
    if "@" in spec and not rev:
        raise UsageError(f"{spec!r}: empty revision after '@'")
    return repo, rev or None


def find(name: str, dirs: Sequence[Path]) -> mf.Manifest:
    """The first manifest called ``name`` on the search path."""
    try:
        mf.check_name(name)
    except ValueError as e:
        raise UsageError(f"{name!r} is not a model name: {e}") from None
    for d in dirs:
        path = d / f"{name}.toml"
        if path.is_file():
            m = mf.load(path)
            if m.name != name:
                raise ManifestError(str(path), "name", f"is {m.name!r} but the file is named {name}.toml")
            return m
    known = ", ".join(sorted(m.name for m, _ in available(dirs))) or "none"
    raise UsageError(f"no manifest named {name!r} (known: {known}); pass --manifest PATH or ORG/REPO")


def available(dirs: Sequence[Path]) -> list[tuple[mf.Manifest, Path]]:
    """Every valid manifest on the search path, first one of each name winning."""
    seen, out = set(), []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                m = mf.load(path)
            except ManifestError:
                continue
            if m.name not in seen:
                seen.add(m.name)
                out.append((m, path))
    return out


# ---------------------------------------------------------------- repos pinned from the hub

def hub_entry(repo: str, commit: str, e: RemoteEntry) -> mf.FileEntry:
    """A file of the hub's listing as a manifest entry: exact size, LFS sha256 or git blob id."""
    try:
        mf.check_relpath(e.path)
    except ValueError as why:
        raise UsageError(f"{repo}@{commit}: the hub lists an unsafe file name {e.path!r}: {why}") from None
    digest = (mf.Digest("sha256", e.sha256, "hub-lfs") if e.sha256
              else mf.Digest("git-sha1", e.git_sha1, "hub-git") if e.git_sha1 else None)
    return mf.FileEntry(e.path, e.size, (digest,) if digest else ())
def check_revision(rev: str) -> None:
    """Refuse a revision no hub branch, tag or commit can be named (``.``, ``a:b``, controls)."""
    why = mf.revision_problem(rev)
    if why:
        raise UsageError(f"{rev!r:.80} is not a revision a hub can have: {why}")


def pin(cache: Cache, source: Source, repo: str, rev: str | None, notes: list[str] | None = None) -> mf.Manifest:
    """List ``repo`` at ``rev`` on the source and record the result as a manifest in the cache. A
    static mirror's listing is the manifest it publishes; ``notes`` hears that it was used."""
    if rev is not None:
        check_revision(rev)
    from .sources.base import Published  # loads only when a source is asked

    listing = source.listing(repo, rev or "main")
    if isinstance(listing, Published):
        if notes is not None:
            notes.append(f"{source.endpoint} has no hub API ({listing.why}); using the manifest the mirror "
                         f"publishes at {listing.where} (pass --manifest to trust your own instead)")
        return store_pin(cache, repo, rev, listing.manifest)
    commit = listing.commit
    if not isinstance(commit, str) or not mf.FULL_COMMIT_RE.match(commit):
        raise HubError(f"{repo}@{rev or 'main'}: the hub answered commit {commit!r:.60}, not a full "
                       f"40-hex commit id; refusing to cache anything under it")
    if rev and mf.FULL_COMMIT_RE.match(rev) and commit != rev:
        raise HubError(f"{repo}@{rev}: the hub answered commit {commit} for the full commit asked for; "
                       f"refusing to cache it as {rev[:12]}")
    files = [hub_entry(repo, commit, e) for e in listing.entries]
    if not files:
        raise UsageError(f"{repo}@{commit}: the repository has no files")
    m = mf.Manifest(name=repo, repo=repo, revision=commit, files=tuple(files), sources=dict(HUB_SOURCES),
                    description=f"pinned from {source.endpoint} at {rev or 'main'}")
    return store_pin(cache, repo, rev, mf.parse(mf.to_toml(m), f"<pinned {repo}@{commit}>"))


def resolve(spec: str, cache: Cache, dirs: Sequence[Path], manifest_path: str | None = None,
            source: Source | None = None, notes: list[str] | None = None) -> mf.Manifest:
    """The manifest for NAME, ORG/REPO[@REV] or ``--manifest PATH``.

    With a source, ORG/REPO is listed on it unless a pull at a full commit was pinned already;
    without one (verify, show, path, offline) only pinned manifests are used. When the
    hub cannot be reached at all, a listing pinned earlier for the same revision name stands in,
    with a note saying so (as ``huggingface_hub`` falls back to its cached snapshot).
    """
    if manifest_path:
        m = mf.load(manifest_path)
        if spec and spec != m.name:
            raise UsageError(f"--manifest {manifest_path} describes {m.name!r}, not {spec!r}")
        return m
    if not spec:
        raise UsageError("name a model (NAME or ORG/REPO[@REV]) or pass --manifest PATH")
    if not is_repo_spec(spec):
        return find(spec, dirs)
    repo, rev = split_spec(spec)
    known = pinned(cache, repo, rev)
    if known and (source is None or source.offline or (rev and mf.FULL_COMMIT_RE.match(rev))):
        return known
    if source is None or source.offline:
        why = "offline mode is on" if source else "it was never pulled"
        raise (OfflineError if source else UsageError)(
            f"{spec}: no pinned file list in the cache and {why}; pull it first")
    try:
        return pin(cache, source, repo, rev, notes)
    except HubUnreachable as e:
        if not known:
            raise
        if notes is not None:
            notes.append(f"the hub could not be reached ({e}); using the file list pinned at "
                         f"{known.revision[:12]} for {spec} from an earlier pull")
        return known
