"""Pickles beside the weights that a trainer, not a model loader, reads (``training_args.bin``,
``optimizer.pt``, ...).

They legitimately hold objects (a ``TrainingArguments``), so the weight allowlist would refuse
good repositories; they are still code when loaded. Rule: refuse (exit 5) a pickle that reaches a
dangerous callable, judged after every indirection the scan can see (an attribute chain in a
global's name, a re-export under another module, ``STACK_GLOBAL`` from the memo); otherwise name
its globals in a warning, which ``check --strict`` turns into a refusal.
"""

from __future__ import annotations

from pathlib import Path

from .formats import PICKLE, TORCH_TAR, TORCH_ZIP, Candidate
from .model import Problem, StructureError
from .pickle_scan import ALLOWED, MAX_PICKLE, check_archive, pickle_globals
from .zipreader import ZipRefused, open_archive

#: Modules whose every attribute is refused (and their submodules: ``os.path`` is ``os``).
DENIED_MODULES = {
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "importlib", "runpy",
    "pickle", "_pickle", "cPickle", "dill", "shutil", "socket", "pty", "code", "codeop", "ctypes", "_ctypes",
    "multiprocessing", "marshal", "types", "asyncio", "signal", "webbrowser", "pip", "setuptools", "distutils",
    "timeit", "pdb", "bdb", "trace", "profile", "cProfile", "doctest", "pydoc", "tempfile", "glob", "io", "_io",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests", "httpx", "commands", "platform", "zipimport",
    "pkgutil", "inspect", "gc", "threading", "_thread", "sqlite3",
}
#: Callables refused whatever module they are reached through (a re-export is the same function).
DENIED_NAMES = {
    "eval", "exec", "execfile", "compile", "open", "getattr", "setattr", "delattr", "__import__", "globals",
    "locals", "vars", "breakpoint", "input", "apply", "reload", "system", "popen", "Popen", "spawn", "call",
    "check_call", "check_output", "run", "load", "loads", "import_module", "attrgetter", "methodcaller",
    "partial", "partialmethod", "runstring", "run_path", "run_module", "execv", "execve", "fork", "remove",
    "unlink", "rmtree", "rmdir", "write", "write_bytes", "write_text", "urlopen", "create_connection",
}
DENIED = {("numpy.testing._private.utils", "runstring"), ("torch.hub", "load"), ("torch", "load")}


def dangerous(module: str, name: str) -> str | None:
    """Why (module, name) is refused, or None."""
    top = module.split(".")[0]
    if top in ("builtins", "__builtin__") and name in DENIED_NAMES:
        return "a builtin that runs code or touches files"
    if top in DENIED_MODULES:
        return f"module {top} runs commands, imports code or touches files"
    if "." in name:
        return "an attribute chain (reaches any module's attributes)"
    if name in DENIED_NAMES or (module, name) in DENIED:
        return "a dangerous callable (whatever module re-exports it)"
    return None


def pickle_bytes(directory: Path, c: Candidate) -> bytes:
    """The pickle ``torch.load`` would run for this file; raises StructureError when it is unclear."""
    path = directory / c.name
    try:
        if c.format == TORCH_ZIP:
            archive = open_archive(path)
            prefix, _ = check_archive(archive, c.name)
            member = archive.member(f"{prefix}/data.pkl")
            if member.size > MAX_PICKLE:
                raise StructureError(Problem(c.name, f"data.pkl is {member.size} bytes (limit {MAX_PICKLE}): "
                                                     f"limit hit", unsafe=True))
            return archive.read(member)
        if c.format == TORCH_TAR:
            raise StructureError(Problem(c.name, "a legacy torch tar archive: refused unscanned", unsafe=True))
        if path.stat().st_size > MAX_PICKLE:
            raise StructureError(Problem(c.name, f"a {path.stat().st_size}-byte pickle (limit {MAX_PICKLE}): "
                                                 f"limit hit", unsafe=True))
        return path.read_bytes()
    except ZipRefused as e:
        raise StructureError(Problem(c.name, f"refused archive: {e}", unsafe=True)) from None
    except OSError as e:
        raise StructureError(Problem(c.name, f"cannot read: {e}")) from None


def check_auxiliary(directory: Path, c: Candidate, strict: bool) -> tuple[list[Problem], list[str]]:
    """(problems, notes) for one auxiliary pickle; nothing is unpickled."""
    assert c.format in (PICKLE, TORCH_ZIP, TORCH_TAR)
    try:
        found = pickle_globals(pickle_bytes(directory, c), c.name)
    except StructureError as e:
        return [e.problem], []
    refused = {f"{m}.{n}": why for m, n in found if (why := dangerous(m, n))}
    if refused:
        first = next(iter(refused))
        names = ", ".join(refused)
        return [Problem(c.name, f"refused global{'s' if len(refused) > 1 else ''} {names}: {refused[first]} "
                                f"(nothing was unpickled)", unsafe=True)], []
    others = sorted({f"{m}.{n}" for m, n in found if (m, n) not in ALLOWED})
    if not others:
        return [], []
    what = f"a pickle (not weights) that imports {', '.join(others[:8])}" + (" ..." if len(others) > 8 else "")
    if strict:
        return [Problem(c.name, f"{what}: refused by --strict", unsafe=True)], []
    return [], [f"{c.name}: {what} when loaded; none is on the denylist (--strict refuses it)"]
