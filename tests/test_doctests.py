"""The ``>>>`` examples in the public functions' docstrings are tests: each runs offline, on files
it writes itself, so an example a reader copies is one that worked. Examples that need the hub
or a pulled model are marked ``+SKIP`` (and say so); every other one runs here."""

from __future__ import annotations

import doctest
import inspect
import tempfile

import pytest

import weightsafe.api
import weightsafe.cache
import weightsafe.records

MODULES = [weightsafe.api, weightsafe.cache, weightsafe.records]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_the_docstring_examples_run(module, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # every temp dir an example makes goes here
    for var in ("WEIGHTSAFE_MANIFEST_PATH", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WEIGHTSAFE_CACHE", str(tmp_path / "default-cache"))  # never the user's cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and never the network
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, capsys.readouterr().out
    assert result.attempted > 0


def test_every_public_function_of_the_api_has_an_example():
    api = weightsafe.api
    functions = [getattr(api, n) for n in api.__all__]
    own = [f for f in functions if inspect.isfunction(f) and f.__module__ == api.__name__]
    assert len(own) >= 15
    missing = [f.__name__ for f in own if ">>>" not in (f.__doc__ or "")]
    assert not missing, missing


def test_a_wrong_example_fails(tmp_path):
    """The harness can fail: an example whose output differs is counted."""
    def sample():
        """
        >>> 1 + 1
        3
        """

    runner = doctest.DocTestRunner(verbose=False)
    for test in doctest.DocTestFinder().find(sample, "sample", globs={}):
        runner.run(test, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1
