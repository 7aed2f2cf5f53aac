"""weightsafe: download model weights and prove they are intact and usable before serving.

The public API (``pull``, ``verify``, ``check``, ``path``) is what the CLI calls; see api.py.
"""

__version__ = "0.1.0"

from .api import check, path, plan, pull, pull_report, verify  # noqa: E402
from .errors import (DiskError, HubError, IntegrityError, Interrupted, ManifestError, NotCachedError,  # noqa: E402
                     PullFailed, UnsafeContentError, UsageError, WeightsafeError)
from .settings import Settings  # noqa: E402


def __getattr__(name: str):
    """``weightsafe.export`` loads mirror.py on first use, not at every command's start-up."""
    if name == "export":
        from .mirror import export

        return export
    raise AttributeError(f"module 'weightsafe' has no attribute {name!r}")

__all__ = ["pull", "export", "pull_report", "plan", "verify", "check", "path", "Settings", "WeightsafeError",
           "UsageError", "ManifestError", "IntegrityError", "HubError", "DiskError", "UnsafeContentError",
           "NotCachedError", "PullFailed", "Interrupted", "__version__"]
