"""weightsafe: download model weights and prove they are intact and usable before serving.

The public API (``pull``, ``verify``, ``check``, ``path``) is what the CLI calls; see api.py.
"""

from ._version import __version__
from .api import check, path, plan, pull, pull_report, verify
from .errors import (DiskError, HubError, IntegrityError, Interrupted, ManifestError, NotCachedError,
                     PullFailed, UnsafeContentError, UsageError, WeightsafeError)
from .settings import Settings


def __getattr__(name: str):
    """``weightsafe.export`` loads exporter.py on first use, not at every command's start-up."""
    if name == "export":
        from .exporter import export

        return export
    raise AttributeError(f"module 'weightsafe' has no attribute {name!r}")

__all__ = ["pull", "export", "pull_report", "plan", "verify", "check", "path", "Settings", "WeightsafeError",
           "UsageError", "ManifestError", "IntegrityError", "HubError", "DiskError", "UnsafeContentError",
           "NotCachedError", "PullFailed", "Interrupted", "__version__"]
