"""Command line: parse options, call the public API (api.py), print its report, map errors to exit codes.

Exit codes: 0 ok, 1 integrity failure, 2 usage or bad manifest, 3 network or hub, 4 disk,
5 unsafe content, 130 interrupted, 70 internal error (a bug: please report it).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time

import click

from . import __version__, api, catalog
from .errors import DiskError, ExitCode, UsageError, WeightsafeError
from .progress import LineProgress, Progress, RetryLines, TqdmProgress
from .report import (check_text, clean_text, emit_json, error_json, escape, models_text, plan_text, pull_text,
                     size, verify_text)
from .settings import Settings

INTERNAL_ERROR = 70
#: Set on Ctrl-C: every download worker stops at its next buffer.
CANCEL = threading.Event()


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
        CANCEL.clear()  # one command, one cancel (the in-process test runner calls many)
        try:
            code = fn(*args, **kwargs)
        except WeightsafeError as e:
            code = e.exit_code
            _fail(e, code, as_json)
        except KeyboardInterrupt:
            CANCEL.set()
            code = ExitCode.INTERRUPTED
            click.echo("weightsafe: interrupted; partial downloads are kept and will resume", err=True)
            if as_json:
                emit_json(error_json(KeyboardInterrupt("interrupted"), code))
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


# ---------------------------------------------------------------- shared options

def signature_options(fn):
    """--signature / --public-key / --certificate-chain (OpenSSF model signatures, extra 'sign')."""
    fn = click.option("--certificate-chain", "certificate_chain", multiple=True, type=click.Path(dir_okay=False),
                      help="Verify the signature with this certificate chain instead of a public key.")(fn)
    fn = click.option("--public-key", "public_key", type=click.Path(dir_okay=False),
                      help="PEM public key the signature must verify with (offline).")(fn)
    return click.option("--signature", type=click.Path(dir_okay=False),
                        help="OpenSSF model signature (sigstore bundle): check the files against it too.")(fn)


def cache_option(fn):
    return click.option("--cache-dir", type=click.Path(file_okay=False),
                        help="Cache root (default: WEIGHTSAFE_CACHE, else the platform cache dir).")(fn)


def output_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")(fn)
    return click.option("--quiet", "-q", is_flag=True, help="Print only errors.")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")(fn)


def device_option(fn):
    return click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                        help="Where the load check loads tensors (auto: CUDA when available).")(fn)


def manifest_option(fn):
    return click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
                        help="Use this manifest file.")(fn)


def revision_option(fn):
    return click.option("--revision", help="Revision of ORG/REPO (same as ORG/REPO@REV).")(fn)


def select_options(fn):
    fn = click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")(fn)
    return click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable).")(fn)


def jobs_option(help_text: str):
    return click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
                        help=f"{help_text} (default: from the core count).")


def keep_cache_option(done: str):
    return click.option("--keep-cache", is_flag=True,
                        help=f"Keep the files' pages in the page cache (default: dropped once {done}, so a "
                             f"large model does not evict what the machine had cached).")


def where_options(fn):
    """Where the files to verify or check are: the cache (default), or one of these."""
    fn = click.option("--hf-cache", is_flag=True, help="The Hugging Face cache snapshot (HF_HUB_CACHE).")(fn)
    fn = click.option("--local-dir", type=click.Path(file_okay=False), help="A directory pulled with --local-dir.")(fn)
    return click.option("--dir", "directory", type=click.Path(file_okay=False),
                        help="Any directory (with --manifest PATH or a NAME to compare against).")(fn)


def _progress(settings: Settings, quiet: bool, as_json: bool) -> Progress:
    if quiet:
        return Progress()
    if as_json:
        return RetryLines()
    return TqdmProgress() if sys.stderr.isatty() and settings.progress_bars else LineProgress(stop=CANCEL)


# ---------------------------------------------------------------- commands

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weightsafe")
def main():
    """Download model weights and prove they are intact and usable before anything serves them."""


@main.command()
@click.argument("name")
@revision_option
@manifest_option
@click.option("--endpoint", help="Hub or mirror base URL (default: HF_ENDPOINT, then huggingface.co).")
@select_options
@jobs_option("Files fetched at once")
@click.option("--offline", is_flag=True, help="Never use the network (also HF_HUB_OFFLINE=1).")
@click.option("--local-dir", type=click.Path(file_okay=False),
              help="Also place the verified files at DIR/<path> (a deploy directory).")
@click.option("--hf-cache", is_flag=True,
              help="Also place them in the Hugging Face cache, where transformers finds them by repo id.")
@click.option("--dry-run", is_flag=True, help="Say what would be fetched and how many bytes; change nothing.")
@click.option("--check", "then_check", is_flag=True, help="Run the load check after a successful pull.")
@keep_cache_option("on disk")
@signature_options
@device_option
@cache_option
@output_options
@guarded
def pull(name, revision, manifest_path, endpoint, include, exclude, jobs, offline, local_dir, hf_cache, dry_run,
         then_check, keep_cache, signature, public_key, certificate_chain, device, cache_dir, quiet, as_json):
    """Fetch NAME (a manifest name, or ORG/REPO[@REV]) into the cache and verify every byte."""
    _tune_allocator()
    settings = Settings.from_env()
    common = dict(revision=revision, endpoint=endpoint, cache_dir=cache_dir, include=include, exclude=exclude,
                  offline=offline, manifest=manifest_path, settings=settings)
    if dry_run:
        _emit(api.plan(name, **common), plan_text, quiet, as_json)
        return ExitCode.OK
    report = api.pull_report(name, local_dir=local_dir, hf_cache=hf_cache, jobs=jobs,
                             progress=_progress(settings, quiet, as_json), cancel=CANCEL,
                             signature=signature, public_key=public_key, certificate_chain=certificate_chain,
                             keep_cache=keep_cache, **common)
    checked = None
    if then_check and report.ok:
        where = {"local_dir": local_dir} if local_dir else {"hf_cache": True} if hf_cache else {}
        checked = api.check(None if manifest_path else name, revision=revision, manifest=manifest_path,
                            cache_dir=cache_dir, device=device, settings=settings, **where)
    if as_json:
        emit_json({**report.to_dict(), "check": checked.to_dict() if checked else None})
    else:
        _say(pull_text(report, quiet))
        if checked:
            _say(check_text(checked, quiet))
    return report.exit_code or (checked.exit_code if checked else ExitCode.OK)


@main.command()
@click.argument("name", required=False)
@revision_option
@where_options
@manifest_option
@click.option("--full", is_flag=True, help="Re-check every manifest digest, not the recorded fingerprint.")
@click.option("--strict", is_flag=True, help="Files not in the manifest fail the check.")
@select_options
@jobs_option("Files hashed at once")
@keep_cache_option("read")
@signature_options
@cache_option
@output_options
@guarded
def verify(name, revision, directory, local_dir, hf_cache, manifest_path, full, strict, include, exclude, jobs,
           keep_cache, signature, public_key, certificate_chain, cache_dir, quiet, as_json):
    """Hash the files of NAME (or --dir, --local-dir, --hf-cache) and say exactly what is wrong; with
    --signature, also against an OpenSSF model signature (then --dir needs no manifest)."""
    report = api.verify(name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                        manifest=manifest_path, cache_dir=cache_dir, full=full, strict=strict, include=include,
                        exclude=exclude, jobs=jobs, signature=signature, public_key=public_key,
                        certificate_chain=certificate_chain, keep_cache=keep_cache)
    _emit(report, verify_text, quiet, as_json)
    return ExitCode.OK if report.ok else ExitCode.INTEGRITY


@main.command()
@click.argument("name", required=False)
@revision_option
@where_options
@manifest_option
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
def check(name, revision, directory, local_dir, hf_cache, manifest_path, structure_only, numerics, strict, forward,
          device, cache_dir, quiet, as_json):
    """Prove the weights of NAME (or --dir, --local-dir, --hf-cache) are usable: headers, pickle safety,
    index, config, load."""
    report = api.check(name, revision=revision, directory=directory, local_dir=local_dir, hf_cache=hf_cache,
                       manifest=manifest_path, cache_dir=cache_dir, device=device, structure_only=structure_only,
                       numerics=numerics, strict=strict, forward=forward)
    _emit(report, check_text, quiet, as_json)
    return report.exit_code


@main.command(name="list")
@cache_option
@json_option
@guarded
def list_(cache_dir, as_json):
    """List the models weightsafe has manifests for, and whether each is in the cache."""
    ctx = api.Context.make(cache_dir=cache_dir)
    rows = []
    for m, path in catalog.available(ctx.dirs):
        present = ctx.cache.model_dir(m.name, m.revision).is_dir()
        rows.append({"name": m.name, "repo": m.repo, "revision": m.revision, "files": len(m.files),
                     "bytes": m.known_bytes, "cached": present, "manifest": str(path)})
    if as_json:
        emit_json({"command": "list", "ok": True, "models": rows})
    else:
        for r in rows:
            click.echo(f"{r['name']:<36} {r['repo']:<60} {r['files']:>3} files {size(r['bytes']):>10}"
                       f"{'  cached' if r['cached'] else ''}")
    return 0


@main.command()
@click.argument("name")
@manifest_option
@cache_option
@json_option
@guarded
def show(name, manifest_path, cache_dir, as_json):
    """Show a manifest: repo, revision, files, sizes, digests and their sources, and what is unknown."""
    m = api.Context.make(cache_dir=cache_dir).resolve(name, manifest=manifest_path)
    unknown = [f.path for f in m.files if not f.digests]
    no_size = [f.path for f in m.files if f.size is None]
    if as_json:
        emit_json({"command": "show", "ok": True, "name": m.name, "repo": m.repo, "revision": m.revision,
                   "pinned": m.pinned, "commit": m.commit, "manifest": m.origin, "sources": m.sources,
                   "notes": list(m.notes),
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
        click.echo(f"  {escape(f.path):<44} {sz:>10}  {digests}")
    for note in m.notes:
        click.echo(f"  note: {note}")
    if unknown:
        click.echo(f"  unknown digests: {len(unknown)} file(s); a pull checks them against the hub's own")
    return 0


@main.command()
@click.argument("name")
@revision_option
@manifest_option
@click.option("--hf-cache", is_flag=True, help="The snapshot directory in the Hugging Face cache.")
@cache_option
@json_option
@guarded
def path(name, revision, manifest_path, hf_cache, cache_dir, as_json):
    """Print the local directory of NAME (exit 1 if it has not been pulled there)."""
    directory = api.path(name, revision=revision, manifest=manifest_path, cache_dir=cache_dir, hf_cache=hf_cache)
    if as_json:
        emit_json({"command": "path", "ok": True, "name": name, "path": str(directory)})
    else:
        click.echo(str(directory))
    return ExitCode.OK


# ---------------------------------------------------------------- cache management

@main.group()
def cache():
    """What is in the cache; remove a model; collect garbage."""


@cache.command(name="ls")
@cache_option
@json_option
@guarded
def cache_ls(cache_dir, as_json):
    """Every model in the cache (repo-id pulls too): names, size, revision, last verified."""
    ctx = api.Context.make(cache_dir=cache_dir)
    from . import housekeeping

    models = housekeeping.list_models(ctx.cache)
    if as_json:
        emit_json({"command": "cache ls", "ok": True, "cache": str(ctx.cache.root),
                   "models": [m.to_dict() for m in models]})
    else:
        _say(models_text(ctx.cache.root, models))
    return 0


@cache.command(name="rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Remove without asking.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_option
@json_option
@guarded
def cache_rm(name, yes, dry_run, cache_dir, as_json):
    """Remove NAME or ORG/REPO[@REV] from the cache (files, records, partial downloads)."""
    ctx = api.Context.make(cache_dir=cache_dir)
    from . import housekeeping

    plan = housekeeping.remove(ctx.cache, name, dry_run=True)
    if not dry_run and not yes:
        if as_json or not sys.stdin.isatty():
            raise UsageError(f"cache rm {name}: would remove {len(plan.removed)} item(s), {size(plan.bytes)}; "
                             f"pass --yes to confirm (or --dry-run to list them)")
        _say(clean_text(plan))
        if not click.confirm("Remove these?", default=False, err=True):
            raise UsageError("nothing removed")
    report = plan if dry_run else housekeeping.remove(ctx.cache, name)
    _emit(report, clean_text, False, as_json)
    return 0


@cache.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_option
@json_option
@guarded
def cache_gc(dry_run, cache_dir, as_json):
    """Remove partial downloads no pull is using, rejected copies and orphaned records."""
    from . import housekeeping

    report = housekeeping.gc(api.Context.make(cache_dir=cache_dir).cache, dry_run=dry_run)
    _emit(report, clean_text, False, as_json)
    return 0


from .cli_mirror import mirror as _mirror  # noqa: E402  (mirror export: cli_mirror.py)

main.add_command(_mirror)


# ---------------------------------------------------------------- entry point

def entry(argv: list[str] | None = None) -> None:
    """The console script: click's own usage errors also become one line (and JSON with --json),
    and an interrupted run exits at once rather than waiting for its download threads."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        rv = main.main(args=args, prog_name="weightsafe", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.exceptions.Abort:
        code = ExitCode.INTERRUPTED
        click.echo("weightsafe: interrupted", err=True)
    except click.exceptions.NoArgsIsHelpError as e:  # plain `weightsafe`: the help, as with --help
        click.echo(e.format_message())
        code = 0
    except click.ClickException as e:
        code = ExitCode.USAGE
        message = e.format_message()
        if "--json" in args:
            emit_json(error_json(UsageError(message), code))
        click.echo(f"weightsafe: error: {message} (see weightsafe --help)", err=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    _leave(code)


def _tune_allocator() -> None:
    """Keep glibc's malloc from mapping and unmapping a fresh 1 MiB for every socket read.

    Each read from a download socket allocates up to a buffer's size (1 MiB) and shrinks it to
    what arrived; glibc then serves the next one with a new mmap (its threshold follows the last
    freed size), which the kernel must fault in and zero: ~50,000 page faults per GiB. Fixed
    thresholds (as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ would set before start-up) let
    the heap reuse that memory: 1 GiB pulled in 9 files on 2 cores, 3.50 -> 3.43 CPU-s, 2.29 ->
    2.26 s (medians of 6). Called by `pull` only: no other command streams a socket, and ctypes
    costs every start-up ~2.5 ms. A no-op where the C library is not glibc, or the user set them."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 4 << 20)   # M_MMAP_THRESHOLD: requests below 4 MiB come from the heap
    mallopt(-1, 16 << 20)  # M_TRIM_THRESHOLD: keep up to 16 MiB of freed heap for reuse


def _interrupt(signum, frame):
    """Ctrl-C or SIGTERM (a pod being stopped): stop once, ignore any further signal while stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _leave(code: int) -> None:
    """Exit with ``code``. Download threads were told to stop (CANCEL); a thread blocked on a
    stalled socket is not waited for beyond a moment: its part file is resumable as it is."""
    workers = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    deadline = time.monotonic() + 0.3
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() for t in workers):
        os._exit(code)
    sys.exit(code)


from .cli_manifest import manifest_group  # noqa: E402  (it uses the decorators defined above)

main.add_command(manifest_group)

if __name__ == "__main__":
    entry()
