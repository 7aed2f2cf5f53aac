"""The command line: a thin layer that parses options, calls the public API (``weightsafe.api``),
prints the report it returns and maps errors to exit codes.

Exit codes: 0 ok, 1 integrity failure, 2 usage or bad manifest, 3 network or hub, 4 disk,
5 unsafe content, 130 interrupted, 70 internal error (a bug: please report it).

``app`` is the frame (the group, the error guard, the entry point); each command group has a
module (``models``, ``cache``, ``manifest``, ``mirror``); ``options`` and ``render`` are shared.
"""

from . import cache, models  # noqa: F401  (they register their commands on ``main``)
from .app import CANCEL, entry, main
from .manifest import manifest_group
from .mirror import mirror

main.add_command(mirror)
main.add_command(manifest_group)

__all__ = ["CANCEL", "entry", "main"]
