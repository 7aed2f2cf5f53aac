"""`weightsafe mirror export`: a model verified in the cache becomes a tree in the hub's URL
layout that real nginx serves, and `pull` works from it with the hub gone and no hub API."""

from __future__ import annotations

import json
import os

import pytest

import weightsafe
from tests.conftest import model_dir
from tests.nginx import nginx
from weightsafe.manifest import load as load_manifest
from weightsafe.layout import manifest_relpath

REPO_MODEL = "ibm-granite/granite-3.0-1b-a400m-instruct"


def _export(ws, name, dest, *more):
    res = ws("mirror", "export", name, str(dest), "--json", *more)
    assert res.code == 0, res
    return json.loads(res.out)


def test_export_writes_the_hub_layout_with_hard_links_and_the_manifest(ws, seeds, cache_dir, tmp_path):
    r = seeds["granite-3.0-1b-a400m-instruct"]
    assert ws("pull", REPO_MODEL).code == 0
    dest = tmp_path / "www"
    report = _export(ws, REPO_MODEL, dest)
    base = dest / r.repo / "resolve" / r.commit
    for path, data in r.files.items():
        assert (base / path).read_bytes() == data
        assert os.path.samefile(base / path, cache_dir / "models" / r.repo.replace("/", "--") / r.commit / path)
    assert {f["method"] for f in report["files"]} <= {"hardlink", "reflink"}
    published = load_manifest(dest / manifest_relpath(r.repo, r.commit))
    assert published.revision == r.commit and {f.path for f in published.files} == set(r.files)
    assert all(f.digests for f in published.files)
    assert os.readlink(dest / r.repo / "resolve" / "main") == r.commit

    again = weightsafe.export(REPO_MODEL, dest)  # the same through the Python API: nothing to do
    assert again.changed == 0 and {f.method for f in again.files} == {"present"}


def test_export_refuses_a_model_that_is_not_verified_in_the_cache(ws, seeds, cache_dir, tmp_path):
    for never_pulled in ("granite-3.0-2b-instruct", "ibm-granite/granite-3.0-2b-instruct"):
        res = ws("mirror", "export", never_pulled, str(tmp_path / "www"))
        assert res.code == 1 and "not in the cache" in res.err, res
    r = seeds["granite-3.0-2b-instruct"]
    assert ws("pull", "granite-3.0-2b-instruct").code == 0
    victim = model_dir(cache_dir, r) / "config.json"
    victim.write_bytes(victim.read_bytes().replace(b"{", b"[", 1))
    res = ws("mirror", "export", "granite-3.0-2b-instruct", str(tmp_path / "www"))
    assert res.code == 1 and "does not verify in the cache" in res.err, res
    assert not (tmp_path / "www").exists()


def test_export_is_resumable_after_a_file_went_missing(ws, seeds, tmp_path):
    r = seeds["granite-3.0-1b-a400m-instruct"]
    assert ws("pull", REPO_MODEL).code == 0
    dest = tmp_path / "www"
    _export(ws, REPO_MODEL, dest)
    gone = dest / r.repo / "resolve" / r.commit / "config.json"
    gone.unlink()
    report = _export(ws, REPO_MODEL, dest)
    assert report["changed"] == 1 and gone.read_bytes() == r.files["config.json"]


@pytest.fixture
def exported(ws, hub, seeds, tmp_path):
    """The codefuse replica (card MD5s and hub digests) and a repo pin, exported; the hub stopped."""
    assert ws("pull", "codefuse-34b").code == 0
    assert ws("pull", REPO_MODEL).code == 0
    dest = tmp_path / "www"
    _export(ws, "codefuse-34b", dest)
    _export(ws, REPO_MODEL, dest)
    hub.stop()  # from here on only nginx serves anything
    with nginx(dest, tmp_path / "nginx") as server:
        yield server


@pytest.mark.parametrize("spec", [f"{REPO_MODEL}@dca19800", REPO_MODEL, "codefuse-ai/CodeFuse-CodeLlama-34B"])
def test_pull_a_repo_id_from_an_exported_mirror_with_no_hub_api(ws, exported, seeds, tmp_path, spec):
    if "@" in spec:
        spec = f"{REPO_MODEL}@{seeds['granite-3.0-1b-a400m-instruct'].commit}"
    cache = tmp_path / "node-cache"
    res = ws("pull", spec, "--endpoint", exported.url(), "--cache-dir", str(cache), "--json")
    assert res.code == 0, res
    out = json.loads(res.out)
    assert any("no hub API" in n for n in out["notes"])
    r = next(x for x in seeds.values() if x.repo == spec.split("@")[0])
    published = load_manifest(exported.root / manifest_relpath(r.repo, r.commit))
    for f in published.files:
        assert (cache / "models" / r.repo.replace("/", "--") / r.commit / f.path).read_bytes() == r.files[f.path]
    assert weightsafe.verify(spec, cache_dir=cache, full=True).ok


def test_pull_a_name_from_an_exported_mirror(ws, exported, seeds, tmp_path):
    cache = tmp_path / "node-cache"
    res = ws("pull", "codefuse-34b", "--endpoint", exported.url(), "--cache-dir", str(cache))
    assert res.code == 0, res
    assert weightsafe.verify("codefuse-34b", cache_dir=cache, full=True).ok


def test_a_local_manifest_stays_the_truth_when_the_mirror_lies(ws, exported, seeds, tmp_path, replica_manifests):
    """A mirror that swaps a file (and drops or rewrites its own manifest) cannot fool a puller
    holding the manifest from elsewhere: the forged file is refused, nothing lands."""
    r = seeds["codefuse-34b"]
    base = exported.root / r.repo / "resolve" / r.commit
    target = base / "config.json"
    forged = bytearray(target.read_bytes())
    forged[10] ^= 0x01
    target.unlink()  # a hard link into the exporter's cache: replace, never write through it
    target.write_bytes(forged)
    (base / ".weightsafe" / "manifest.toml").unlink()
    cache = tmp_path / "node-cache"
    res = ws("pull", "codefuse-34b", "--endpoint", exported.url(), "--cache-dir", str(cache),
             "--manifest", str(replica_manifests / "codefuse-34b.toml"))
    assert res.code == 1 and "config.json" in res.err, res
    assert not (cache / "models" / "codefuse-34b" / r.commit / "config.json").exists()
