"""The public API: what the CLI does, callable from Python with no subprocess.

    >>> import weightsafe
    >>> path = weightsafe.pull("ibm-granite/granite-3.0-2b-instruct", hf_cache=True)
    >>> weightsafe.verify("ibm-granite/granite-3.0-2b-instruct", full=True).ok
    True

Every function reads the environment once (``Settings.from_env``); its keyword arguments win
over it. Nothing here prints or exits: results are report objects, and every failure is a
``WeightsafeError`` subclass carrying the CLI's ``exit_code``. ``verify`` and ``check`` return a
report whose ``ok`` says whether the model passed (``report.raise_for_status()`` turns a failed
one into an exception); ``pull`` raises ``PullFailed`` when any file failed.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import NotCachedError, PullFailed, UsageError
from .locate import Context, Located, PathLike, locate
from .manifest import Manifest
from .progress import Progress
from .settings import Settings
from .targets import Target, open_target, place_all
from .verify import VerifyReport, verify_directory

if TYPE_CHECKING:  # the HTTP stack (requests, ~0.3 s to import) loads only for commands that use it
    from .puller import PullPlan, PullReport


# ---------------------------------------------------------------- shared plumbing

def _select(m: Manifest, include: Iterable[str] | None, exclude: Iterable[str] | None) -> Manifest:
    return m.select(tuple(include or ()), tuple(exclude or ()))


# ---------------------------------------------------------------- pull

def pull_report(name: str | None = None, *, revision: str | None = None, endpoint: str | None = None,
                cache_dir: PathLike | None = None, local_dir: PathLike | None = None, hf_cache: bool = False,
                include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
                jobs: int | None = None, offline: bool = False, manifest: PathLike | None = None,
                progress: Progress | None = None, cancel: threading.Event | None = None,
                signature: PathLike | None = None, public_key: PathLike | None = None,
                certificate_chain: Sequence[PathLike] = (), settings: Settings | None = None,
                keep_cache: bool = False) -> PullReport:
    """Like ``pull``, but returns the report even when files failed (the CLI prints it)."""
    from .puller import Puller

    ctx = Context.make(endpoint=endpoint, cache_dir=cache_dir, offline=offline, settings=settings)
    progress = progress or Progress()
    source = ctx.source(progress)
    notes: list[str] = []
    m = _select(ctx.resolve(name, revision, manifest, source, notes), include, exclude)
    if not m.files:
        raise UsageError(f"{m.name}: no file matches include {list(include or [])} / exclude {list(exclude or [])}")
    report = Puller(m, ctx.cache, source, jobs, progress, cancel, keep_cache).run()
    report.notes[:0] = notes
    if report.ok and signature:  # before anything is placed where a loader looks
        report.signature = _signed(ctx.cache.model_dir(m.name, m.revision), signature, public_key,
                                   certificate_chain, jobs)
    if report.ok and local_dir:
        _to_local_dir(ctx, m, report, Path(local_dir))
    if report.ok and hf_cache:
        _to_hf_cache(ctx, m, report)
    return report


def pull(name: str | None = None, *, revision: str | None = None, endpoint: str | None = None,
         cache_dir: PathLike | None = None, local_dir: PathLike | None = None, hf_cache: bool = False,
         include: Sequence[str] | None = None, exclude: Sequence[str] | None = None, jobs: int | None = None,
         offline: bool = False, manifest: PathLike | None = None, progress: Progress | None = None,
         cancel: threading.Event | None = None, signature: PathLike | None = None,
         public_key: PathLike | None = None, certificate_chain: Sequence[PathLike] = (),
         settings: Settings | None = None, keep_cache: bool = False) -> Path:
    """Fetch a model (a manifest NAME or ``org/repo``) and verify every byte; returns the directory
    to load it from: ``local_dir`` if given, else the Hugging Face cache snapshot with
    ``hf_cache=True``, else weightsafe's cache. Raises ``PullFailed`` (``.report``) if a file failed.
    With ``signature`` (an OpenSSF model signature) the files must also match what it signs.
    The pages written are dropped from the page cache once on disk, unless ``keep_cache``: a
    100 GB pull does not evict what the machine had cached (keep them when a server on this
    machine loads the model right after)."""
    report = pull_report(name, revision=revision, endpoint=endpoint, cache_dir=cache_dir, local_dir=local_dir,
                         hf_cache=hf_cache, include=include, exclude=exclude, jobs=jobs, offline=offline,
                         manifest=manifest, progress=progress, cancel=cancel, signature=signature,
                         public_key=public_key, certificate_chain=certificate_chain, settings=settings,
                         keep_cache=keep_cache)
    if not report.ok:
        raise PullFailed(report)
    return Path(report.path)


def plan(name: str | None = None, *, revision: str | None = None, endpoint: str | None = None,
         cache_dir: PathLike | None = None, include: Sequence[str] | None = None,
         exclude: Sequence[str] | None = None, offline: bool = False, manifest: PathLike | None = None,
         settings: Settings | None = None) -> PullPlan:
    """What a pull would fetch and how many bytes (``pull --dry-run``); changes nothing on disk."""
    from .puller import Puller

    ctx = Context.make(endpoint=endpoint, cache_dir=cache_dir, offline=offline, settings=settings)
    source = ctx.source()
    notes: list[str] = []
    m = _select(ctx.resolve(name, revision, manifest, source, notes), include, exclude)
    result = Puller(m, ctx.cache, source).preview()
    result.notes[:0] = notes
    return result


def _summary(where: str, placements) -> str:
    counts = Counter(p.method for p in placements)
    how = ", ".join(f"{n} by {method}" for method, n in sorted(counts.items()))
    cost = "no extra disk space" if not counts.get("copy") else "copies take extra disk space (another file system)"
    return f"placed {len(placements)} file(s) in {where}: {how}; {cost}"


def _place(ctx: Context, m: Manifest, report: PullReport, target: Target, where: str) -> None:
    """Place every file of ``m`` from the cache into ``target``, finish it, and say so in the report."""
    records = ctx.cache.records(m.name, m.revision).files()
    placed = place_all(target, ((f, ctx.cache.final_path(m.name, m.revision, f.path), records.get(f.path))
                                for f in m.files))
    done = target.finish()
    report.placements += placed
    report.notes += done.notes
    report.target = report.target or done.location
    report.notes.append(_summary(where, placed))


def _to_local_dir(ctx: Context, m: Manifest, report: PullReport, root: Path) -> None:
    _place(ctx, m, report, open_target(local_dir=root, manifest=m, commit=report.commit), str(root))


def _to_hf_cache(ctx: Context, m: Manifest, report: PullReport) -> None:
    target = open_target(hf_cache=ctx.settings.hf_hub_cache, manifest=m, commit=report.commit)
    _place(ctx, m, report, target, f"the Hugging Face cache {target.root}")


# ---------------------------------------------------------------- verify, check, path

def verify(name: str | None = None, *, revision: str | None = None, directory: PathLike | None = None,
           local_dir: PathLike | None = None, hf_cache: bool = False, manifest: PathLike | None = None,
           cache_dir: PathLike | None = None, full: bool = False, strict: bool = False,
           include: Sequence[str] | None = None, exclude: Sequence[str] | None = None, jobs: int | None = None,
           signature: PathLike | None = None, public_key: PathLike | None = None,
           certificate_chain: Sequence[PathLike] = (), settings: Settings | None = None,
           keep_cache: bool = False) -> VerifyReport:
    """Hash the files of a model and judge each against the manifest; never needs the network.

    Plain verify compares each file with the xxh3-128 fingerprint recorded when it was last fully
    checked (disk speed); ``full=True`` re-checks every manifest digest. Works on a read-only cache.
    With ``signature`` the files are also checked against an OpenSSF model signature
    (``report.signature``); a directory then needs no manifest at all. Pages read are dropped
    from the page cache after, unless ``keep_cache``."""
    ctx = Context.make(cache_dir=cache_dir, settings=settings)
    where = locate(ctx, name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                   manifest=manifest, need_manifest=not signature)
    signed = _signed(where.directory, signature, public_key, certificate_chain, jobs) if signature else None
    if where.manifest is None and signed is not None:  # the signature is the only expectation
        return VerifyReport(signed.name, str(where.directory), [], signed.seconds, 0, signature=signed)
    report = verify_directory(where.manifest, where.directory, where.records, full=full,
                              jobs=jobs, strict=strict, include=include, exclude=exclude, keep_cache=keep_cache)
    report.notes[:0] = list(where.notes)
    report.signature = signed
    return report


def _signed(directory: Path, signature: PathLike, public_key: PathLike | None,
            certificate_chain: Sequence[PathLike], jobs: int | None) -> VerifyReport:
    from .signing import verify_signed_directory

    return verify_signed_directory(directory, signature, public_key, tuple(certificate_chain), jobs=jobs)


def check(name: str | None = None, *, revision: str | None = None, directory: PathLike | None = None,
          local_dir: PathLike | None = None, hf_cache: bool = False, manifest: PathLike | None = None,
          cache_dir: PathLike | None = None, device: str = "auto", structure_only: bool = False,
          numerics: bool = False, strict: bool = False, forward: bool = False, settings: Settings | None = None):
    """Prove the weights usable: headers, pickle safety, index, config, then a load on ``device``.
    ``strict`` refuses auxiliary pickles (training_args.bin, ...) that import anything beyond the
    weight allowlist; ``forward`` also runs one short forward pass (needs transformers).
    Returns a ``LoadReport`` (``.ok``, ``.problems``, ``.exit_code``)."""
    from .loadcheck import check as load_check

    ctx = Context.make(cache_dir=cache_dir, settings=settings)
    where = locate(ctx, name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                   manifest=manifest, need_manifest=False)
    label = name or (where.manifest.name if where.manifest else where.directory.name)
    report = load_check(where.directory, where.manifest, name=label, device=device, load=not structure_only,
                        numerics=numerics, strict=strict, forward=forward)
    report.notes[:0] = list(where.notes)
    return report


def path(name: str, *, revision: str | None = None, manifest: PathLike | None = None,
         cache_dir: PathLike | None = None, hf_cache: bool = False, settings: Settings | None = None) -> Path:
    """The directory to load NAME from (weightsafe's cache, or the HF cache snapshot with
    ``hf_cache=True``). Raises ``NotCachedError`` (exit 1) when it has not been pulled there."""
    ctx = Context.make(cache_dir=cache_dir, settings=settings)
    if hf_cache:
        return locate(ctx, name, revision=revision, hf_cache=True, manifest=manifest).directory
    m = ctx.resolve(name, revision, manifest)
    directory = ctx.cache.model_dir(m.name, m.revision)
    if not directory.is_dir():
        err = NotCachedError(f"{m.name} is not in the cache {ctx.cache.root}; run `weightsafe pull {m.name}`")
        err.exit_code = 1
        err.path = directory
        raise err
    return directory


__all__ = ["pull", "pull_report", "plan", "verify", "check", "path", "locate", "Context", "Located"]
