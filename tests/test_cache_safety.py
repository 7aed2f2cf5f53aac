"""The cache itself (issue 12, class 10): something planted at a partial, state or lock path is
never written through; the pull stops with exit 4 and says what it found."""

from __future__ import annotations

import os

import pytest

TARGET = "model.safetensors"


def _planted(cache_dir, seeds, suffix: str):
    r = seeds["granite-3.0-1b-a400m-instruct"]
    sub = "locks" if suffix == ".lock" else "partial"
    path = cache_dir / sub / r.repo.replace("/", "--") / r.commit / (TARGET + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return r, path


@pytest.mark.parametrize("suffix", [".part", ".part.json", ".lock"])
@pytest.mark.parametrize("how", ["symlink out", "symlink in", "hardlink"])
def test_a_link_planted_in_the_cache_is_never_written_through(ws, hub, seeds, cache_dir, tmp_path, suffix, how):
    """A symlink leaving the cache is refused by the cache's path rule (exit 2, as before); one to
    another file inside it, and any hard link, by the planted-file check (exit 4)."""
    victim = (cache_dir / "victim.txt") if how == "symlink in" else (tmp_path / "victim.txt")
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("precious")
    r, path = _planted(cache_dir, seeds, suffix)
    (path.symlink_to if how.startswith("symlink") else path.hardlink_to)(victim)
    res = ws("pull", r.repo + "@" + r.commit)
    if how == "symlink out" and suffix != ".part.json":
        assert res.code == 2 and "outside the cache" in res.err, res
    else:
        assert res.code == 4, res
        assert ("is a symlink" if how.startswith("symlink") else "hard links") in res.err and "remove it" in res.err
    assert victim.read_text() == "precious"
    final = cache_dir / "models" / r.repo.replace("/", "--") / r.commit / TARGET
    assert not final.exists() or not final.is_symlink()
    path.unlink()
    assert ws("pull", r.repo + "@" + r.commit).code == 0  # once removed, the pull completes
    assert victim.read_text() == "precious" and os.stat(victim).st_nlink == 1


def test_a_file_name_of_255_bytes_gets_a_short_internal_part_name(ws, hub, seeds, cache_dir):
    r = seeds["granite-3.0-2b-instruct"]
    long_name = "n" * 250 + ".json"
    files = {**r.files, long_name: b'{"long": true}'}
    hub.state.add_repo("long/names", "b" * 40, files)
    res = ws("pull", "long/names")
    assert res.code == 0, res
    assert (cache_dir / "models" / "long--names" / ("b" * 40) / long_name).read_bytes() == b'{"long": true}'


@pytest.mark.parametrize("bad", ["a\u0085b.json", "csi\u009b.json", "COM\u00b9", "trailing.", "space ", "what?.json"])
def test_a_hub_listing_a_non_portable_path_is_refused_before_anything_is_written(ws, hub, seeds, cache_dir, bad):
    r = seeds["granite-3.0-2b-instruct"]
    hub.state.add_repo("odd/paths", "c" * 40, {**r.files, bad: b"{}"})
    res = ws("pull", "odd/paths")
    assert res.code == 2 and "unsafe file name" in res.err and res.err.count("\n") == 1, res
    assert not (cache_dir / "models" / "odd--paths").exists()


def test_nfc_and_nfd_spellings_of_one_name_are_duplicates_in_a_manifest():
    import unicodedata

    from weightsafe import manifest as mf

    nfc = unicodedata.normalize("NFC", "caf\u00e9.json")
    nfd = unicodedata.normalize("NFD", nfc)
    text = ('schema = 1\nname = "x"\nrepo = "o/x"\nrevision = "' + "d" * 40 + '"\n'
            f'[[files]]\npath = "{nfc}"\nsize = 2\n[[files]]\npath = "{nfd}"\nsize = 2\n')
    with pytest.raises(mf.ManifestError, match="duplicates files"):
        mf.parse(text)
