"""weightsafe: download model weights and prove they are intact and usable before serving.

The public API (``pull``, ``verify``, ``check``, ``path``, ``export``, and in ``weightsafe.api`` the
reports behind every other command) is what the CLI calls; see api.py and docs/ARCHITECTURE.md.
"""

from ._version import __version__
from .api import check, export, path, plan, pull, pull_report, verify
from .errors import (DiskError, HubError, IntegrityError, Interrupted, ManifestError, NotCachedError,
                     PullFailed, UnsafeContentError, UsageError, WeightsafeError)
from .settings import Settings


__all__ = ["pull", "export", "pull_report", "plan", "verify", "check", "path", "Settings", "WeightsafeError",
           "UsageError", "ManifestError", "IntegrityError", "HubError", "DiskError", "UnsafeContentError",
           "NotCachedError", "PullFailed", "Interrupted", "__version__"]
