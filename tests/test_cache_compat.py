"""A cache written by the released weightsafe 0.1.0 (tests/data/cache-0.1.0, made by
tests/data/make_cache_0_1_0.py at commit 9a94a73: a repo-id pull of a tiny model, then a verify)
still works: the on-disk format is a promise, not an implementation detail. Every test runs on a
copy, offline."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_ws
from weightsafe import api
from weightsafe.cache import Cache

FIXTURE = Path(__file__).parent / "data" / "cache-0.1.0"
REPO = "ws-fixture/tiny"
COMMIT = "cbcd724ce29d1b2b2abffd12e401af42031d56c2"


@pytest.fixture
def old_cache(tmp_path) -> Path:
    root = tmp_path / "cache"
    shutil.copytree(FIXTURE, root)  # new inodes and mtimes: the recorded fingerprints no longer apply
    return root


@pytest.fixture
def offline_env(old_cache, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WEIGHTSAFE_"))}
    return {**env, "WEIGHTSAFE_CACHE": str(old_cache), "HF_HOME": str(tmp_path / "hf-home"),
            "WEIGHTSAFE_MANIFEST_PATH": str(tmp_path / "no-manifests"), "HF_HUB_OFFLINE": "1",
            "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: any request would fail


def test_verify_reads_the_old_records_and_pinned_manifest(offline_env):
    res = run_ws("verify", REPO, "--json", env=offline_env)
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["counts"] == {"ok": 2} and {f["path"] for f in report["files"]} == {"config.json",
                                                                                       "model.safetensors"}
    assert run_ws("verify", REPO, "--full", env=offline_env).code == 0


def test_a_changed_byte_in_the_old_cache_is_still_caught(offline_env, old_cache):
    weights = old_cache / "models" / "ws-fixture--tiny" / COMMIT / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    res = run_ws("verify", REPO, env=offline_env)
    assert res.code == 1 and "model.safetensors" in res.err


def test_cache_ls_and_path_read_the_old_layout(offline_env, old_cache):
    res = run_ws("cache", "ls", "--json", env=offline_env)
    assert res.code == 0, res
    [model] = json.loads(res.out)["models"]
    assert model["names"] == [REPO] and model["repo"] == REPO and model["commit"] == COMMIT
    assert model["files"] == 2 and model["bytes"] == 149 and model["last_verified"] is not None
    res = run_ws("path", REPO, env=offline_env)
    assert res.code == 0 and res.out.strip() == str(old_cache / "models" / "ws-fixture--tiny" / COMMIT)


def test_a_repull_needs_no_network(offline_env):
    res = run_ws("pull", REPO, "--include", "*.json", "--include", "*.safetensors", "--json", env=offline_env)
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["commit"] == COMMIT and report["bytes_fetched"] == 0
    assert {f["path"]: f["status"] for f in report["files"]} == {"config.json": "cached", "model.safetensors": "cached"}


def test_the_old_records_read_as_a_model_record(old_cache):
    record = Cache(old_cache).records(REPO, COMMIT).model()
    assert (record.name, record.repo, record.revision, record.commit) == (REPO, REPO, COMMIT, COMMIT)
    assert record.pulled == ("config.json", "model.safetensors")
    assert record.files["model.safetensors"].digests == {
        "sha256": "de134f3d8f1861c8f00efc341b3db4b0d0f44c5562578cd4d281f3f3f4294cda"}


def test_cache_rm_removes_everything_the_old_release_wrote(offline_env, old_cache):
    report = api.cache_rm(REPO, cache_dir=old_cache)
    kinds = sorted(r.kind for r in report.removed)
    assert kinds == ["lock", "lock", "model", "pinned-manifest", "records"]  # git keeps no empty partial/
    assert not (old_cache / "models" / "ws-fixture--tiny").exists()
    assert not list((old_cache / "records").rglob("*.json"))
