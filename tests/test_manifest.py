"""Manifests: the shipped ones are complete and honest; bad ones are refused with file, field, reason."""

from __future__ import annotations

import pytest

from weightsafe import catalog, manifest as mf
from weightsafe.errors import ManifestError

SEEDS = ["codefuse-34b", "granite-8b-code-instruct-4k", "granite-3.0-1b-a400m-instruct",
         "granite-3.0-2b-instruct", "octocoder", "starcoder-gpteacher-code-instruct"]


def shipped(name):
    return mf.load(catalog.packaged_dir() / f"{name}.toml")


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_model_has_a_valid_manifest(name):
    m = shipped(name)
    assert m.name == name
    assert any(f.path == "config.json" for f in m.files)
    assert any(f.path.endswith((".bin", ".safetensors")) for f in m.files)


def test_codefuse_manifest_carries_the_card_md5s_and_hub_sha256s_exactly():
    m = shipped("codefuse-34b")
    assert m.pinned and m.revision == "7b92b5b0565e86eba9135a6c094d20107d82ee5f"
    bins = [f for f in m.files if f.path.endswith(".bin")]
    assert len(bins) == 7
    assert sum(f.size for f in bins) == 67_488_095_271
    first = m.file("pytorch_model-00001-of-00007.bin")
    assert first.digest("md5").hex == "8d544b1bcb3449934184d4141137329c"
    assert first.digest("md5").source == "card"
    assert first.digest("sha256").hex == "fb1cd3c944b6dd2ece21c09d7378a77ccc279867dfe4b8b8b7cbfa58e4ffe4a3"
    assert first.digest("sha256").source == "hub-lfs"
    assert m.file("config.json").size == 738 and not m.file("config.json").digests


def test_unknown_facts_stay_absent():
    star = shipped("starcoder-gpteacher-code-instruct")
    assert all(not f.digests for f in star.files)
    assert all(f.size is None for f in star.files)
    octo = shipped("octocoder")
    assert [f.path for f in octo.files if f.digests] == ["pytorch_model-00001-of-00007.bin",
                                                          "pytorch_model.bin.index.json"]


def test_a_manifest_round_trips_through_toml():
    m = shipped("codefuse-34b")
    again = mf.parse(mf.to_toml(m), "again")
    assert again.files == m.files and again.sources == m.sources and again.revision == m.revision


from tests.scenarios import GOOD  # noqa: E402  (one valid manifest, shared with the bad-input corpus)


@pytest.mark.parametrize("text, field, reason", [
    ("schema = 1\nname = ", "toml", "Invalid"),
    (GOOD.replace("schema = 1", "schema = 2"), "schema", "must be 1"),
    (GOOD.replace('name = "m"', 'name = "../m"'), "name", "letters"),
    (GOOD.replace('repo = "org/m"', 'repo = "m"'), "repo", "ORG/NAME"),
    (GOOD + "colour = 1\n", "files[0].colour", "unknown key"),
    (GOOD.replace("size = 3", "size = -3"), "files[0].size", "negative"),
    (GOOD.replace("size = 3", 'size = "3"'), "files[0].size", "integer"),
    (GOOD.replace('"md5"', '"crc32"'), "files[0].digests[0].alg", "unknown algorithm"),
    (GOOD.replace("900150983cd24fb0d6963f7d28e17f72", "900150983CD24FB0D6963F7D28E17F72"),
     "files[0].digests[0].hex", "lowercase hex"),
    (GOOD.replace("900150983cd24fb0d6963f7d28e17f72", "9001"), "files[0].digests[0].hex", "needs 32"),
    (GOOD.replace('source = "card"', 'source = "blog"'), "files[0].digests[0].source", "not declared"),
    (GOOD + '[[files]]\npath = "a.bin"\n', "files[1].path", "duplicates files[0]"),
    (GOOD + '[[files]]\npath = "a.bin/x"\n', "files[0].path", "both a file and a directory"),
    (GOOD.replace('path = "a.bin"', 'path = "../x"'), "files[0].path", "'..'"),
    (GOOD.replace('path = "a.bin"', 'path = "/etc/passwd"'), "files[0].path", "absolute"),
    (GOOD.replace('path = "a.bin"', 'path = "C:x"'), "files[0].path", "drive"),
    (GOOD.replace('path = "a.bin"', 'path = "..\\\\x"'), "files[0].path", "backslash"),
    (GOOD.replace('path = "a.bin"', 'path = "a\\u0000b"'), "files[0].path", "NUL"),
    (GOOD.replace('path = "a.bin"', f'path = "{"x" * 300}"'), "files[0].path", "longer than 255"),
    (GOOD.replace("[[files]]", "[[nope]]"), "nope", "unknown key"),
    ('schema = 1\nname = "m"\nrepo = "org/m"\nrevision = "main"\nfiles = []\n', "files", "non-empty"),
    (GOOD.replace('revision = "main"', 'revision = "a b"'), "revision", "not a valid"),
    (GOOD.replace('revision = "main"', 'revision = "main"\ncommit = "XYZ"'), "commit", "hex"),
])
def test_bad_manifests_are_rejected_with_file_field_and_reason(text, field, reason):
    with pytest.raises(ManifestError) as e:
        mf.parse(text, "bad.toml")
    msg = str(e.value)
    assert msg.startswith("bad.toml: ") and e.value.field == field and reason in msg, msg
    assert "\n" not in msg


def test_globs_select_files():
    m = mf.parse(GOOD + '[[files]]\npath = "sub/b.safetensors"\nsize = 1\n', "x")
    assert [f.path for f in m.select(include=["*.safetensors"]).files] == ["sub/b.safetensors"]
    assert [f.path for f in m.select(exclude=["*.safetensors"]).files] == ["a.bin"]
