"""Command line: parse options, call the library, print the result, map errors to exit codes.

Exit codes: 0 ok, 1 integrity failure, 2 usage or bad manifest, 3 network or hub,
4 disk, 5 unsafe content, 130 interrupted, 70 internal error (a bug: please report it).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from . import __version__, catalog
from .cache import Cache
from .errors import DiskError, ExitCode, UsageError, WeightsafeError
from .progress import LineProgress, Progress, TqdmProgress
from .report import check_text, emit_json, error_json, escape, pull_text, size, verify_text

INTERNAL_ERROR = 70


def _emit(report, render, quiet: bool, as_json: bool) -> None:
    """A result as one JSON object on stdout, or as text from ``render``."""
    if as_json:
        emit_json(report.to_dict())
    else:
        _say(render(report, quiet))


def _say(lines: list[str]) -> None:
    """Tables and summaries to stdout; 'error:' and 'warning:' lines to stderr."""
    for line in lines:
        click.echo(line, err=line.startswith(("error:", "warning:")))


def guarded(fn):
    """Run a command so that every failure is one line (or one JSON object) and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = kwargs.get("as_json", False)
        try:
            code = fn(*args, **kwargs)
        except WeightsafeError as e:
            code = e.exit_code
            _fail(e, code, as_json)
        except KeyboardInterrupt:
            click.echo("weightsafe: interrupted; partial downloads are kept and will resume", err=True)
            code = 130
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:  # `weightsafe show X | head`: the reader left, nothing to say
            sys.stdout = open(os.devnull, "w")
            code = 0
        except OSError as e:  # a file-system failure outside a download (full disk, permissions)
            code = ExitCode.DISK
            where = f"{e.filename}: " if e.filename else ""
            _fail(DiskError(f"file system error: {where}{e.strerror or e}"), code, as_json)
        except Exception as e:  # a bug: still one line, never a traceback
            code = INTERNAL_ERROR
            _fail(RuntimeError(f"internal error: {type(e).__name__}: {e} (please report this)"), code, as_json)
        sys.exit(code or 0)

    return wrapper


def _fail(e: BaseException, code: int, as_json: bool) -> None:
    if as_json:
        emit_json(error_json(e, code))
    click.echo(escape(f"weightsafe: error: {e}"), err=True)


def cache_option(fn):
    return click.option("--cache-dir", type=click.Path(file_okay=False), envvar="WEIGHTSAFE_CACHE",
                        help="Cache root (default: platform cache dir; env WEIGHTSAFE_CACHE).")(fn)


def output_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")(fn)
    return click.option("--quiet", "-q", is_flag=True, help="Print only errors.")(fn)


def device_option(fn):
    return click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                         help="Where the load check loads tensors (auto: CUDA when available).")(fn)


def _progress(quiet: bool, as_json: bool) -> Progress:
    if quiet or as_json:
        return Progress()
    return TqdmProgress() if sys.stderr.isatty() else LineProgress()


def _locate(cache: Cache, name: str | None, directory: str | None, manifest_path: str | None,
            need_manifest: bool):
    """The manifest, directory and records a verify or check is about. A cached model is
    narrowed to what was pulled (e.g. only the safetensors of a repo that has both formats)."""
    if directory and need_manifest and not (manifest_path or name):
        raise UsageError("--dir needs --manifest PATH (or a model NAME) to compare against")
    manifest = catalog.resolve(name or "", cache, manifest_path) if (name or manifest_path) else None
    if directory:
        target = Path(directory)
        if not target.is_dir():
            raise UsageError(f"--dir {directory}: not a directory")
        return manifest, target, cache.dir_records(target)
    if manifest is None:
        raise UsageError("name a model, or pass --dir DIR")
    target = cache.model_dir(manifest.name, manifest.revision)
    if not target.is_dir():
        raise UsageError(f"{manifest.name} is not in the cache {cache.root}; run `weightsafe pull {manifest.name}`")
    records = cache.records(manifest.name, manifest.revision)
    pulled = records.load().get("pulled")
    return (manifest.select(include=pulled) if pulled else manifest), target, records


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weightsafe")
def main():
    """Download model weights and prove they are intact and usable before anything serves them."""


@main.command()
@click.argument("name")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), help="Use this manifest file.")
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Files fetched at once.")
@click.option("--offline", is_flag=True, envvar="HF_HUB_OFFLINE", help="Never use the network.")
@click.option("--check", "then_check", is_flag=True, help="Run the load check after a successful pull.")
@device_option
@cache_option
@output_options
@guarded
def pull(name, manifest_path, endpoint, include, exclude, jobs, offline, then_check, device, cache_dir, quiet,
         as_json):
    """Fetch NAME (a manifest name, or ORG/REPO[@REV]) into the cache and verify every byte."""
    from .hub import HubClient, offline_from_env, resolve_token
    from .pull import Puller

    cache = Cache(cache_dir)
    client = HubClient(endpoint, token=resolve_token(), offline=offline or offline_from_env())
    manifest = catalog.resolve(name, cache, manifest_path, client).select(include, exclude)
    if not manifest.files:
        raise UsageError(f"{name}: no file matches --include {list(include)} / --exclude {list(exclude)}")
    report = Puller(manifest, cache, client, jobs, _progress(quiet, as_json)).run()
    checked = None
    if then_check and report.ok:
        from .loadcheck import check as load_check

        checked = load_check(Path(report.directory), manifest, device=device)
    if as_json:
        emit_json({**report.to_dict(), "check": checked.to_dict() if checked else None})
    else:
        _say(pull_text(report, quiet))
        if checked:
            _say(check_text(checked, quiet))
    return report.exit_code or (checked.exit_code if checked else ExitCode.OK)


@main.command()
@click.argument("name", required=False)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Verify this directory instead of the cache.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), help="Use this manifest file.")
@click.option("--full", is_flag=True, help="Re-check every manifest digest, not the recorded fingerprint.")
@click.option("--strict", is_flag=True, help="Files not in the manifest fail the check.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=os.cpu_count() or 4, help="Files hashed at once.")
@cache_option
@output_options
@guarded
def verify(name, directory, manifest_path, full, strict, include, exclude, jobs, cache_dir, quiet, as_json):
    """Hash the files of NAME (or --dir DIR with --manifest PATH) and say exactly what is wrong."""
    from .verify import verify_directory

    manifest, target, records = _locate(Cache(cache_dir), name, directory, manifest_path, need_manifest=True)
    manifest = manifest.select(include, exclude)
    report = verify_directory(manifest, target, records, full=full, jobs=jobs, strict=strict)
    _emit(report, verify_text, quiet, as_json)
    return ExitCode.OK if report.ok else ExitCode.INTEGRITY


@main.command()
@click.argument("name", required=False)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Check this directory instead of the cache.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), help="Use this manifest file.")
@click.option("--structure-only", is_flag=True, help="Headers, pickle scan, index and config only; load nothing.")
@click.option("--numerics", is_flag=True, help="Also count NaN/Inf values per tensor (reads every value).")
@click.option("--strict", is_flag=True, help="Refuse auxiliary pickles (training_args.bin, ...) that import anything"
              " beyond what a state dict needs.")
@click.option("--forward", is_flag=True, help="After the load, build the model from config.json and run one short "
              "forward pass (needs transformers).")
@device_option
@cache_option
@output_options
@guarded
def check(name, directory, manifest_path, structure_only, numerics, strict, forward, device, cache_dir, quiet,
          as_json):
    """Prove the weights of NAME (or --dir DIR) are usable: headers, pickle safety, index, config, load."""
    from .loadcheck import check as load_check

    manifest, target, _ = _locate(Cache(cache_dir), name, directory, manifest_path, need_manifest=False)
    report = load_check(target, manifest, name=name or "", device=device, load=not structure_only,
                        numerics=numerics, strict=strict, forward=forward)
    _emit(report, check_text, quiet, as_json)
    return report.exit_code


@main.command(name="list")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def list_(cache_dir, as_json):
    """List the models weightsafe knows, and whether each is in the cache."""
    cache = Cache(cache_dir)
    rows = []
    for m, path in catalog.available():
        present = cache.model_dir(m.name, m.revision).is_dir()
        rows.append({"name": m.name, "repo": m.repo, "revision": m.revision, "files": len(m.files),
                     "bytes": m.known_bytes, "cached": present, "manifest": str(path)})
    if as_json:
        emit_json({"models": rows})
    else:
        for r in rows:
            click.echo(f"{r['name']:<36} {r['repo']:<60} {r['files']:>3} files {size(r['bytes']):>10}"
                       f"{'  cached' if r['cached'] else ''}")
    return 0


@main.command()
@click.argument("name")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False))
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def show(name, manifest_path, cache_dir, as_json):
    """Show a manifest: repo, revision, files, sizes, digests and their sources, and what is unknown."""
    m = catalog.resolve(name, Cache(cache_dir), manifest_path)
    unknown = [f.path for f in m.files if not f.digests]
    no_size = [f.path for f in m.files if f.size is None]
    if as_json:
        emit_json({"name": m.name, "repo": m.repo, "revision": m.revision, "pinned": m.pinned,
                   "commit": m.commit, "manifest": m.origin, "sources": m.sources, "notes": list(m.notes),
                   "files": [{"path": f.path, "size": f.size, "size_approx": f.size_approx,
                              "digests": [{"alg": d.alg, "hex": d.hex, "source": d.source} for d in f.digests]}
                             for f in m.files],
                   "unknown_digests": unknown, "unknown_sizes": no_size})
        return 0
    click.echo(f"{m.name}: {m.repo} @ {m.revision}{'' if m.pinned else '  (not a full commit: unpinned)'}")
    if m.description:
        click.echo(f"  {m.description}")
    click.echo(f"  manifest: {m.origin}")
    for key, text in m.sources.items():
        click.echo(f"  source {key}: {text}")
    for f in m.files:
        sz = size(f.size) if f.size is not None else f"~{size(f.size_approx)}" if f.size_approx else "?"
        digests = ", ".join(f"{d.alg}:{d.hex[:16]}… ({d.source})" for d in f.digests) or "no digest known"
        click.echo(f"  {f.path:<44} {sz:>10}  {digests}")
    for note in m.notes:
        click.echo(f"  note: {note}")
    if unknown:
        click.echo(f"  unknown digests: {len(unknown)} file(s); a pull checks them against the hub's own")
    return 0


@main.command()
@click.argument("name")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False))
@cache_option
@guarded
def path(name, manifest_path, cache_dir):
    """Print the local directory of NAME in the cache (exit 1 if it is not there)."""
    cache = Cache(cache_dir)
    m = catalog.resolve(name, cache, manifest_path)
    directory = cache.model_dir(m.name, m.revision)
    click.echo(str(directory))
    return ExitCode.OK if directory.is_dir() else ExitCode.INTEGRITY


if __name__ == "__main__":
    main()
