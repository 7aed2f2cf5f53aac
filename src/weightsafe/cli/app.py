"""The command line's frame: the ``weightsafe`` group, the guard that turns every failure into one line
and an exit code, progress output, signals and the console entry point.

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

from .._version import __version__
from ..errors import DiskError, ExitCode, UsageError, WeightsafeError
from ..progress import LineProgress, Progress, RetryLines, TqdmProgress
from ..settings import Settings
from .render import emit_json, error_json, escape

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


def _listing(report, render, as_json: bool) -> None:
    """A report that is all output (a listing, a manifest): one JSON object, or its lines, every
    one to stdout whatever it starts with."""
    if as_json:
        emit_json(report.to_dict())
        return
    for line in render(report):
        click.echo(line)


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


__all__ = ["CANCEL", "entry", "guarded", "main"]
