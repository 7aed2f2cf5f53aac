"""Targets: every destination takes verified files one by one (``place``) and is then finished
(``finish``) so its consumer finds the model: weightsafe's cache, the Hugging Face cache (found
by ``huggingface_hub`` offline), a deploy directory (``verify --local-dir`` passes), a mirror
directory (the manifest at ``layout.manifest_relpath``) and an S3 prefix. ``open_target`` alone
decides the kind, from the destination.

These run without a hub: a tiny model is committed into a cache through ``CacheTarget``, and the
other targets place from there, as ``pull`` and ``mirror export`` do."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import xxhash

from weightsafe import manifest as mf
from weightsafe.cache import Cache
from weightsafe.errors import DiskError, NotCachedError, UsageError
from weightsafe.layout import manifest_relpath
from weightsafe.records import FileRecord, Stat
from weightsafe.targets import Placement, open_target, place_all
from weightsafe.targets.base import PRESENT, Finished
from weightsafe.targets.cache import CacheTarget
from weightsafe.targets.hfcache import HFCacheTarget
from weightsafe.targets.localdir import LocalDir, LocalDirTarget
from weightsafe.targets.mirror_dir import MirrorDirTarget
from weightsafe.verify import verify_directory

REPO = "tiny-org/tiny-model"
COMMIT = hashlib.sha1(b"tiny-model@main").hexdigest()
FILES = {
    "config.json": b'{"model_type": "tiny"}\n',
    "model.safetensors": os.urandom(300_000),
    "tokenizer/vocab.txt": b"a\nb\nc\n",
}
LINKS = {"reflink", "hardlink"}  # tmp_path is one file system: never a copy


def _manifest() -> mf.Manifest:
    files = tuple(mf.FileEntry(p, len(d), (mf.Digest("sha256", hashlib.sha256(d).hexdigest(), "test"),))
                  for p, d in FILES.items())
    return mf.Manifest(name=REPO, repo=REPO, revision="main", files=files, sources={"test": "computed by the test"})


class Model:
    """A model verified in a cache, as a pull leaves it: files at their final paths, and records."""

    def __init__(self, cache: Cache, manifest: mf.Manifest):
        self.cache, self.manifest = cache, manifest
        self.records = cache.records(manifest.name, manifest.revision).files()

    def files(self):
        m = self.manifest
        return [(f, self.cache.final_path(m.name, m.revision, f.path), self.records.get(f.path)) for f in m.files]


def _commit_parts(cache: Cache, m: mf.Manifest) -> list[Placement]:
    """What the puller does after every digest of a part matched: commit it through CacheTarget."""
    target = open_target(cache=cache, manifest=m)
    placed = []
    for f in m.files:
        part = cache.part_path(m.name, m.revision, f.path)
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(FILES[f.path])
        record = FileRecord.passed(Stat.of(part), xxhash.xxh3_128(FILES[f.path]).hexdigest(), f.digests)
        placed.append(target.place(f, part, record))
    assert target.finish() == Finished(target.root)
    return placed


@pytest.fixture
def model(tmp_path) -> Model:
    cache = Cache(tmp_path / "cache")
    m = _manifest()
    _commit_parts(cache, m)
    return Model(cache, m)


# ---------------------------------------------------------------- weightsafe's own cache

def test_the_cache_target_commits_a_verified_part_to_its_final_path_with_its_record(tmp_path):
    cache = Cache(tmp_path / "cache")
    m = _manifest()
    placed = _commit_parts(cache, m)
    model_dir = cache.model_dir(m.name, m.revision)
    assert [p.to_dict() for p in placed] == [
        {"path": p, "target": str(model_dir / p), "method": "rename"} for p in FILES]
    for path, data in FILES.items():
        assert (model_dir / path).read_bytes() == data
        assert not cache.part_path(m.name, m.revision, path).exists()
    records = cache.records(m.name, m.revision).files()
    assert all(records[p].matches(Stat.of(model_dir / p)) for p in FILES)  # a verify is a stat + fingerprint
    report = verify_directory(m, model_dir, cache.records(m.name, m.revision))
    assert report.ok, report


def test_the_cache_target_says_which_file_could_not_be_committed(tmp_path):
    cache = Cache(tmp_path / "cache")
    m = _manifest()
    target = CacheTarget(cache, m)
    with pytest.raises(DiskError, match="config.json: cannot move into the cache"):
        target.place(m.files[0], tmp_path / "no-such.part", None)


# ---------------------------------------------------------------- the Hugging Face cache

def test_the_hf_cache_target_is_what_huggingface_hub_finds_offline(model, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    hub_cache = tmp_path / "hf" / "hub"
    target = open_target(hf_cache=hub_cache, manifest=model.manifest, commit=COMMIT)
    assert isinstance(target, HFCacheTarget)
    placed = place_all(target, model.files())
    assert {p.method for p in placed} <= LINKS
    done = target.finish()
    snapshot = hub_cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert done.location == str(snapshot)
    assert (hub_cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main").read_text() == COMMIT
    for revision in ("main", COMMIT):
        found = huggingface_hub.snapshot_download(REPO, revision=revision, cache_dir=hub_cache,
                                                  local_files_only=True)
        assert Path(found) == snapshot
        assert {p: (Path(found) / p).read_bytes() for p in FILES} == FILES
    blob = os.readlink(snapshot / "model.safetensors")  # named as huggingface_hub names it: the sha256
    assert Path(blob).name == hashlib.sha256(FILES["model.safetensors"]).hexdigest()


def test_the_hf_cache_target_gives_a_pinned_model_a_main_ref_only_where_there_is_none(model, tmp_path):
    hub_cache = tmp_path / "hf"
    pinned = replace(model.manifest, revision=COMMIT)
    target = open_target(hf_cache=hub_cache, manifest=pinned, commit=COMMIT)
    place_all(target, model.files())
    assert target.finish().notes == (f"refs/main of {REPO} in the Hugging Face cache now names {COMMIT[:12]} "
                                     f"(there was none), so from_pretrained({REPO!r}) finds it offline",)
    assert target.finish().notes == ()  # the ref is there now: never moved, nothing to say


def test_the_hf_cache_needs_the_commit(model, tmp_path):
    with pytest.raises(NotCachedError, match="no X-Repo-Commit.*the Hugging Face cache"):
        open_target(hf_cache=tmp_path / "hf", manifest=model.manifest, commit=None)
    with pytest.raises(NotCachedError, match="not a full commit hash"):  # it names a directory
        open_target(hf_cache=tmp_path / "hf", manifest=model.manifest, commit="../../etc")


# ---------------------------------------------------------------- a deploy directory

def test_a_local_dir_target_passes_verify_local_dir(model, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from weightsafe.cli import main

    deploy = tmp_path / "deploy"
    target = open_target(local_dir=deploy, manifest=model.manifest, commit=COMMIT)
    assert isinstance(target, LocalDirTarget)
    placed = place_all(target, model.files())
    assert [p.path for p in placed] == list(FILES) and {p.method for p in placed} <= LINKS
    done = target.finish()
    assert done.location == str(deploy) and done.manifest == str(LocalDir(deploy).manifest_path)
    assert {p: (deploy / p).read_bytes() for p in FILES} == FILES
    assert LocalDir(deploy).manifest().commit == COMMIT  # the revision, pinned to what it resolved to

    for k, v in {"WEIGHTSAFE_CACHE": tmp_path / "cache", "HF_HOME": tmp_path / "hf-home",
                 "XDG_CONFIG_HOME": tmp_path / "config"}.items():
        monkeypatch.setenv(k, str(v))
    res = CliRunner().invoke(main, ["verify", "--local-dir", str(deploy), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] is True


# ---------------------------------------------------------------- a mirror directory

def test_a_mirror_dir_target_writes_the_hub_layout_and_the_manifest_last(model, tmp_path):
    www = tmp_path / "www"
    target = open_target(www, manifest=model.manifest, commit=COMMIT, alias="main")
    assert isinstance(target, MirrorDirTarget) and target.root == str(www)
    placed = place_all(target, model.files())
    assert {p.method for p in placed} <= LINKS
    assert not (www / manifest_relpath(REPO, COMMIT)).exists()  # a tree with a manifest is complete
    done = target.finish()
    assert done.manifest == str(www / manifest_relpath(REPO, COMMIT))
    assert mf.load(done.manifest).files == model.manifest.files
    base = www / REPO / "resolve" / COMMIT
    assert {p: (base / p).read_bytes() for p in FILES} == FILES
    assert done.aliases == (str(www / REPO / "resolve" / "main"),)
    assert os.readlink(www / REPO / "resolve" / "main") == COMMIT

    again = open_target(www, manifest=model.manifest, commit=COMMIT, alias="main")
    assert {p.method for p in place_all(again, model.files())} == {PRESENT}  # re-running is a no-op
    assert again.finish() == done


# ---------------------------------------------------------------- open_target

def test_open_target_picks_the_kind_from_the_destination(model, tmp_path):
    m = model.manifest
    assert isinstance(open_target(str(tmp_path / "www"), manifest=m, commit=COMMIT), MirrorDirTarget)
    assert isinstance(open_target(tmp_path / "www", manifest=m, commit=COMMIT), MirrorDirTarget)
    assert isinstance(open_target(local_dir=tmp_path / "d", manifest=m), LocalDirTarget)
    assert isinstance(open_target(cache=model.cache, manifest=m), CacheTarget)
    assert not (tmp_path / "www").exists() and not (tmp_path / "d").exists()  # nothing written before place


def test_open_target_opens_an_s3_prefix(model, monkeypatch):
    pytest.importorskip("boto3")
    from weightsafe.targets.s3 import S3Target

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    target = open_target("s3://bucket/some/prefix/", manifest=model.manifest, commit=COMMIT, jobs=3)
    assert isinstance(target, S3Target)
    assert target.root == "s3://bucket/some/prefix" and target.workers == 3


def test_open_target_refuses_an_unknown_scheme(model):
    with pytest.raises(UsageError, match="give a directory or s3://bucket/prefix") as e:
        open_target("ftp://x", manifest=model.manifest, commit=COMMIT)
    assert e.value.exit_code == 2
    with pytest.raises(NotCachedError):  # a mirror's layout is named by the commit
        open_target("/srv/www", manifest=model.manifest, commit=None)
    with pytest.raises(TypeError, match="exactly one destination"):
        open_target("/srv/www", local_dir="/srv/d", manifest=model.manifest, commit=COMMIT)


def test_place_all_keeps_the_order_of_the_files_when_it_places_in_parallel():
    class Memory:
        root, workers = "mem://", 4

        def place(self, entry, src, record):
            return Placement(entry.path, f"mem://{entry.path}", "upload")

        def finish(self):
            return Finished(self.root)

    target = Memory()
    files = [(mf.FileEntry(f"f{i}"), Path(f"f{i}"), None) for i in range(50)]
    assert [p.path for p in place_all(target, files)] == [f"f{i}" for i in range(50)]
