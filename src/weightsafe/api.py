"""The public API: what the CLI does, callable from Python with no subprocess.

    >>> import weightsafe
    >>> path = weightsafe.pull("ibm-granite/granite-3.0-2b-instruct", hf_cache=True)  # doctest: +SKIP
    >>> weightsafe.verify("ibm-granite/granite-3.0-2b-instruct", full=True).ok  # doctest: +SKIP
    True

(Those two need the hub; every other example here runs offline, as a test: tests/test_doctests.py.)

Every function reads the environment once (``Settings.from_env``); its keyword arguments win
over it. Nothing here prints or exits: results are report objects, and every failure is a
``WeightsafeError`` subclass carrying the CLI's ``exit_code``. ``verify`` and ``check`` return a
report whose ``ok`` says whether the model passed (``report.raise_for_status()`` turns a failed
one into an exception); ``pull`` raises ``PullFailed`` when any file failed.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import NotCachedError, PullFailed, UsageError
from .locate import Context, Located, PathLike, locate
from .manifest import Manifest, to_toml
from .progress import Progress
from .settings import Settings
from .verify import VerifyReport, verify_directory

if TYPE_CHECKING:  # the HTTP stack (requests, ~0.3 s to import) loads only for commands that use it
    from .targets import Target
    from .exporter import ExportReport
    from .housekeeping import CacheListing, CleanReport
    from .inventory import ManifestReport, ModelList
    from .lint import LintRun
    from .loadcheck import LoadReport  # torch and the readers load only when a check runs
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
    """Like ``pull``, but returns the report even when files failed (the CLI prints it).

    >>> import weightsafe
    >>> report = weightsafe.pull_report("granite-3.0-2b-instruct")  # doctest: +SKIP
    >>> report.ok, {f.status for f in report.files}  # doctest: +SKIP
    (True, {'downloaded'})
    """
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
    machine loads the model right after).

    >>> import weightsafe
    >>> weightsafe.pull("ibm-granite/granite-3.0-2b-instruct", local_dir="/srv/granite")  # doctest: +SKIP
    PosixPath('/srv/granite')
    """
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
    """What a pull would fetch and how many bytes (``pull --dry-run``); changes nothing on disk.
    It asks the hub for sizes and the commit, so this example does not run as a test:

    >>> import weightsafe
    >>> p = weightsafe.plan("granite-3.0-2b-instruct")  # doctest: +SKIP
    >>> p.bytes_to_fetch, [f.action for f in p.files][:2]  # doctest: +SKIP
    (5268029900, ['fetch', 'fetch'])
    """
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
    from .targets import place_all

    placed = place_all(target, ((f, ctx.cache.final_path(m.name, m.revision, f.path), records.get(f.path))
                                for f in m.files))
    done = target.finish()
    report.placements += placed
    report.notes += done.notes
    report.target = report.target or done.location
    report.notes.append(_summary(where, placed))


def _to_local_dir(ctx: Context, m: Manifest, report: PullReport, root: Path) -> None:
    from .targets import open_target  # only a pull that places files loads the targets

    _place(ctx, m, report, open_target(local_dir=root, manifest=m, commit=report.commit), str(root))


def _to_hf_cache(ctx: Context, m: Manifest, report: PullReport) -> None:
    from .targets import open_target

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
    from the page cache after, unless ``keep_cache``.

    A directory judged against a manifest written for it, then after a byte changed:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> _ = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> api.verify(directory=root / "tiny", manifest=root / "tiny.toml", cache_dir=root / "cache").ok
    True
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "huge"}')
    >>> report = api.verify(directory=root / "tiny", manifest=root / "tiny.toml", cache_dir=root / "cache")
    >>> report.ok, [(v.path, v.status) for v in report.failures]
    (False, [('config.json', 'mismatch')])
    """
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
          numerics: bool = False, strict: bool = False, forward: bool = False,
          settings: Settings | None = None) -> LoadReport:
    """Prove the weights usable: headers, pickle safety, index, config, then a load on ``device``.
    ``strict`` refuses auxiliary pickles (training_args.bin, ...) that import anything beyond the
    weight allowlist; ``forward`` also runs one short forward pass (needs transformers).
    Returns a ``LoadReport`` (``.ok``, ``.problems``, ``.exit_code``).

    The structure pass over a one-tensor safetensors file written by hand:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> import json, struct
    >>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    >>> _ = (root / "tiny" / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    >>> report = api.check(directory=root / "tiny", structure_only=True, cache_dir=root / "cache")
    >>> report.ok, report.tensors, report.parameters, report.problems
    (True, 1, 2, [])
    """
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
    ``hf_cache=True``). Raises ``NotCachedError`` (exit 1) when it has not been pulled there.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> _ = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> api.path("tiny", manifest=root / "tiny.toml", cache_dir=root / "cache")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    weightsafe.errors.NotCachedError: tiny is not in the cache ...; run `weightsafe pull tiny`
    """
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




# ---------------------------------------------------------------- what is known, what is cached

def models(*, cache_dir: PathLike | None = None, settings: Settings | None = None) -> ModelList:
    """Every model weightsafe has a manifest for (packaged, user dirs, WEIGHTSAFE_MANIFEST_PATH),
    and whether the cache holds it (``weightsafe list``).

    Manifests in a directory of one's own (``WEIGHTSAFE_MANIFEST_PATH``) come before the packaged ones:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> _ = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> from weightsafe import Settings
    >>> settings = Settings.from_env({"WEIGHTSAFE_MANIFEST_PATH": str(root), "WEIGHTSAFE_CACHE": str(root / "c")})
    >>> [(m.name, m.files, m.cached) for m in api.models(settings=settings).models if m.name == "tiny"]
    [('tiny', 1, False)]
    """
    from .inventory import available_models

    ctx = Context.make(cache_dir=cache_dir, settings=settings)
    return available_models(ctx.cache, ctx.dirs)


def show(name: str, *, manifest: PathLike | None = None, cache_dir: PathLike | None = None,
         settings: Settings | None = None) -> ManifestReport:
    """The manifest NAME (or ``org/repo`` pinned by a pull, or the file ``manifest``) in full:
    files, sizes, digests with their sources, and what it leaves unknown (``weightsafe show``).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> _ = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> report = api.show("tiny", manifest=root / "tiny.toml")
    >>> report.manifest.repo, report.unknown_digests, report.to_dict()["files"][0]["digests"][0]["source"]
    ('local/tiny', [], 'local')
    """
    from .inventory import ManifestReport

    return ManifestReport(Context.make(cache_dir=cache_dir, settings=settings).resolve(name, manifest=manifest))


def cache_ls(*, cache_dir: PathLike | None = None, settings: Settings | None = None) -> CacheListing:
    """Every model in the cache, one row per commit under every name it was pulled as.

    >>> import tempfile
    >>> from weightsafe import api
    >>> listing = api.cache_ls(cache_dir=tempfile.mkdtemp())
    >>> listing.models, listing.to_dict()["command"]
    ((), 'cache ls')
    """
    from .housekeeping import listing

    return listing(Context.make(cache_dir=cache_dir, settings=settings).cache)


def cache_rm(spec: str, *, dry_run: bool = False, cache_dir: PathLike | None = None,
             settings: Settings | None = None) -> CleanReport:
    """Remove NAME or ORG/REPO[@REV] from the cache: files, records, partial downloads, locks.
    Raises ``UsageError`` when nothing matches or a pull holds one of its locks; ``dry_run``
    only says what would go.

    >>> import tempfile
    >>> from weightsafe import api
    >>> api.cache_rm("org/tiny", cache_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    weightsafe.errors.UsageError: org/tiny: not in the cache ... (see `weightsafe cache ls`)
    """
    from .housekeeping import remove

    return remove(Context.make(cache_dir=cache_dir, settings=settings).cache, spec, dry_run=dry_run)


def cache_gc(*, dry_run: bool = False, cache_dir: PathLike | None = None,
             settings: Settings | None = None) -> CleanReport:
    """Remove partial downloads no pull is using, rejected copies, orphaned records and stale
    temp files; never a lock file, never a verified model.

    >>> import tempfile
    >>> from weightsafe import api
    >>> report = api.cache_gc(dry_run=True, cache_dir=tempfile.mkdtemp())
    >>> report.removed, report.bytes
    ([], 0)
    """
    from .housekeeping import gc

    return gc(Context.make(cache_dir=cache_dir, settings=settings).cache, dry_run=dry_run)


# ---------------------------------------------------------------- manifests: lint, write, pin

def lint(paths: Iterable[PathLike], *, strict: bool = False) -> LintRun:
    """Judge manifest files: a schema error makes the run exit 2; warnings (unpinned, no digest,
    one source, ...) exit 1 only with ``strict``. Never raises for a bad manifest: it is reported.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> _ = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> _ = (root / "bad.toml").write_text('name = "bad"\\n')
    >>> run = api.lint([root / "tiny.toml", root / "bad.toml"])
    >>> [w.code for w in run.reports[0].warnings], [e.field for e in run.errors], run.exit_code
    (['unpinned', 'one-source'], ['schema'], 2)
    """
    from .lint import lint_files

    return lint_files(paths, strict)


@dataclass(frozen=True)
class CreatedManifest:
    """``manifest create``: the manifest written, where to (None: not written), and what its
    sources said that it could not hold (also in its notes)."""

    manifest: Manifest
    findings: tuple[str, ...]
    output: str | None = None

    ok = True
    exit_code = 0

    def to_toml(self) -> str:
        return to_toml(self.manifest)

    def to_dict(self) -> dict:
        m = self.manifest
        return {"command": "manifest create", "ok": True, "output": self.output, "name": m.name, "repo": m.repo,
                "revision": m.revision, "files": len(m.files), "findings": list(self.findings),
                "manifest": self.to_toml()}


def manifest_create(spec: str | None = None, *, directory: PathLike | None = None, algs: Sequence[str] = ("sha256",),
                    endpoint: str | None = None, name: str | None = None, repo: str | None = None,
                    cards: Sequence[PathLike] = (), read_card: bool = True, signature: PathLike | None = None,
                    public_key: PathLike | None = None, certificate_chain: Sequence[PathLike] = (),
                    output: PathLike | None = None, jobs: int | None = None, cache_dir: PathLike | None = None,
                    settings: Settings | None = None) -> CreatedManifest:
    """Write a manifest for ``spec`` (``ORG/REPO[@REV]``, pinned to the commit it resolves to,
    with every checksum its card publishes) or for the files in ``directory``; to ``output``
    when given. With ``signature``, the digests a verified OpenSSF signature signs are merged in.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from weightsafe import api
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir()
    >>> _ = (root / "tiny" / "config.json").write_text('{"model_type": "tiny"}')
    >>> made = api.manifest_create(directory=root / "tiny", name="tiny", output=root / "tiny.toml")
    >>> made.manifest.name, [f.path for f in made.manifest.files], made.manifest.files[0].digests[0].alg
    ('tiny', ['config.json'], 'sha256')
    >>> api.show("tiny", manifest=root / "tiny.toml").manifest.files == made.manifest.files
    True
    """
    from . import authoring

    if bool(spec) == bool(directory):
        raise UsageError("give ORG/REPO[@REV] or --dir DIR (not both)")
    if directory and (cards or not read_card or endpoint):
        raise UsageError("--card, --no-readme and --endpoint describe a hub repo; not with --dir")
    if spec and repo:
        raise UsageError("--repo is for --dir; ORG/REPO is the argument itself")
    signed = None
    if signature:
        from .signing import read_signed

        signed = read_signed(signature, public_key, certificate_chain)
    if directory:
        skip = [Path(p) for p in (output, signature) if p]
        made = authoring.from_dir(directory, name or Path(directory).resolve().name, repo, algs=algs, jobs=jobs,
                                  skip=skip)
    else:
        assert spec is not None
        from .catalog import split_spec

        repo_id, rev = split_spec(spec)
        ctx = Context.make(endpoint=endpoint, cache_dir=cache_dir, settings=settings)
        made = authoring.from_hub(ctx.source(), repo_id, rev, name=name,
                                  extra=authoring.read_texts(str(c) for c in cards), cache=ctx.cache,
                                  read_card=read_card)
    if signed:
        made = authoring.add_signed(made, signed.digests, signed.describe())
    if output:
        authoring.write(made.manifest, output)
    return CreatedManifest(made.manifest, tuple(f.message for f in made.findings),
                           str(output) if output else None)


@dataclass(frozen=True)
class PinReport:
    """``manifest pin``: the file, the commit it is now pinned at, and each change made to it
    (none: it was already pinned and complete, and was not rewritten)."""

    manifest: str
    revision: str
    changes: tuple[str, ...]

    ok = True
    exit_code = 0

    def to_dict(self) -> dict:
        return {"command": "manifest pin", "ok": True, "manifest": self.manifest, "revision": self.revision,
                "changes": list(self.changes)}


def manifest_pin(path: PathLike, *, revision: str | None = None, endpoint: str | None = None,
                 settings: Settings | None = None) -> PinReport:
    """Resolve the manifest file's branch revision (or ``revision``) to its commit on the hub and
    fill missing sizes and hub digests, in place. A digest or size the hub contradicts raises
    ``HubMismatchError``: the manifest was written for other bytes.
    It asks the hub, so this example does not run as a test:

    >>> from weightsafe import api
    >>> api.manifest_pin("manifests/octocoder.toml").changes[0]  # doctest: +SKIP
    'revision main -> ...'
    """
    from . import authoring
    from .manifest import load

    pinned, changes = authoring.pin(load(path), Context.make(endpoint=endpoint, settings=settings).source(), revision)
    if changes:
        authoring.write(pinned, path)
    return PinReport(str(path), pinned.revision, tuple(changes))


# ---------------------------------------------------------------- mirror

def export(name: str, destination: PathLike, *, revision: str | None = None, cache_dir: PathLike | None = None,
           alias: str | None = None, jobs: int | None = None, settings: Settings | None = None) -> ExportReport:
    """Copy the verified model NAME from the cache to ``destination`` (a directory, or
    ``s3://bucket/prefix``) in the hub's URL layout, so ``pull --endpoint`` can fetch it; see
    ``exporter.export``. Re-running it is a no-op.
    It needs a model pulled into the cache, so this example does not run as a test:

    >>> from weightsafe import api
    >>> api.export("granite-3.0-2b-instruct", "/srv/mirror").changed  # doctest: +SKIP
    True
    """
    from .exporter import export as _export

    return _export(name, destination, revision=revision, cache_dir=cache_dir, alias=alias, jobs=jobs,
                   settings=settings)


__all__ = ["pull", "pull_report", "plan", "verify", "check", "path", "locate", "Context", "Located", "models",
           "show", "cache_ls", "cache_rm", "cache_gc", "lint", "manifest_create", "manifest_pin", "export",
           "CreatedManifest", "PinReport"]
