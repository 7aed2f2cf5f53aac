"""Error types, one per way a run can fail, each carrying its documented exit code.

The CLI maps these to exit codes and prints their message as one line; the library raises
them and never prints. A message names the file, field or value a user must act on.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    INTEGRITY = 1
    USAGE = 2
    NETWORK = 3
    DISK = 4
    UNSAFE = 5
    INTERRUPTED = 130


class WeightsafeError(Exception):
    """Base class: an anticipated failure with a one-line, actionable message."""

    exit_code = ExitCode.USAGE


class UsageError(WeightsafeError):
    """The command line or its inputs do not make sense (unknown model, bad option)."""

    exit_code = ExitCode.USAGE


class ManifestError(WeightsafeError):
    """A manifest is malformed; the message names the file, the field and the reason."""

    exit_code = ExitCode.USAGE

    def __init__(self, source: str, field: str, reason: str):
        self.source, self.field, self.reason = source, field, reason
        super().__init__(f"{source}: {field}: {reason}")


class IntegrityError(WeightsafeError):
    """Bytes on disk or on the wire are not the bytes the manifest promises."""

    exit_code = ExitCode.INTEGRITY


class UnsafeContentError(WeightsafeError):
    """A checkpoint holds something that could run code when loaded; it was never loaded."""

    exit_code = ExitCode.UNSAFE


def first_of(messages: list[str]) -> str:
    """The first problem, and how many more: one line however many there are."""
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return f"{messages[0]}{more}" if messages else "failed"


class HubError(WeightsafeError):
    """The hub or mirror could not be reached, refused us, or answered something unusable."""

    exit_code = ExitCode.NETWORK


class HubMismatchError(HubError):
    """The hub describes a file differently from the manifest; nothing was downloaded."""


class HubUnreachable(HubError):
    """No answer at all (connection refused, DNS, timeout): a cached copy may stand in for it."""


class NotFound(HubError):
    """The source has no such repo, revision or file."""


class OfflineError(HubError):
    """The network was needed while offline mode (HF_HUB_OFFLINE / --offline) is on."""


class DiskError(WeightsafeError):
    """Not enough space, or the cache cannot be written."""

    exit_code = ExitCode.DISK


class NotCachedError(WeightsafeError):
    """The model (or the revision asked for) is not where the command looked for it."""

    exit_code = ExitCode.USAGE


class PullFailed(WeightsafeError):
    """Some files of a pull failed; ``report`` says which and why. The exit code is the worst one's."""

    def __init__(self, report):
        self.report = report
        self.exit_code = report.exit_code
        signed = report.signature.failures if report.signature is not None else []
        super().__init__(first_of([f.message for f in report.failures + signed]))


class Interrupted(WeightsafeError):
    """Ctrl-C or a cancel request: partial downloads are kept and resume on the next pull."""

    exit_code = ExitCode.INTERRUPTED
