"""Reliability: every fault a hub or CDN throws ends in a verified file or a clean, documented
failure; malformed manifests and hostile names are refused; disk full is exit 4 and harmless."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import TOKEN, model_dir, run_ws
from tests.scenarios import FAULTS, GOOD, HOSTILE_NAMES, MODEL, TARGET, malformed_manifests
from weightsafe import manifest as mf
from weightsafe.errors import ManifestError


def final_files_are_verified(cache_dir: Path, r) -> bool:
    d = model_dir(cache_dir, r)
    return all(p.read_bytes() == r.files[str(p.relative_to(d))] for p in d.rglob("*") if p.is_file()) \
        if d.exists() else True


@pytest.mark.parametrize("scenario", FAULTS, ids=[s.name for s in FAULTS])
def test_each_fault_ends_verified_or_with_its_exit_code(ws, hub, seeds, cache_dir, scenario):
    scenario.setup(hub.state)
    extra = dict(scenario.env)
    if scenario.token:
        extra["HF_TOKEN"] = TOKEN
    res = ws("pull", MODEL, **extra)
    assert res.code == scenario.exit_code, (scenario.name, res)
    r = seeds[MODEL]
    assert final_files_are_verified(cache_dir, r)
    if res.code == 0:
        assert (model_dir(cache_dir, r) / TARGET).read_bytes() == r.files[TARGET]
    else:
        last = res.err.strip().splitlines()[-1]
        assert last.startswith(("weightsafe: error:", "error:")) and "Traceback" not in res.err, res.err
        assert not (model_dir(cache_dir, r) / TARGET).exists()
    leaked = [q for q in hub.state.log if q.host != "hub" and "authorization" in q.headers]
    assert not leaked


# ------------------------------------------------------------------ bad input

CORPUS = malformed_manifests()


def test_the_malformed_manifest_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("case", list(CORPUS))
def test_malformed_manifests_are_rejected_with_exit_2_and_one_line(ws, tmp_path, case):
    text = CORPUS[case]
    path = tmp_path / "m.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    before = set(os.listdir(tmp_path))
    res = ws("pull", "m", "--manifest", str(path))
    assert res.code == 2, (case, res)
    assert res.err.count("\n") == 1 and str(path) in res.err, res.err
    assert set(os.listdir(tmp_path)) - before <= {"cache", "hf-home", "config"}


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:30] for n in HOSTILE_NAMES])
def test_hostile_file_names_from_the_hub_are_refused(ws, hub, tmp_path, name):
    hub.state.add_repo("evil/names", "e" * 40, {name: b"payload", "config.json": b"{}"})
    res = ws("pull", "evil/names")
    assert res.code == 2, res
    assert "unsafe file name" in res.err
    escaped = [p for p in tmp_path.parent.rglob("*") if p.name in ("x", "abs") and tmp_path not in p.parents]
    assert not escaped


@given(st.text(min_size=1, max_size=80))
@settings(max_examples=300, deadline=None)
def test_an_accepted_relative_path_never_leaves_its_root(path):
    try:
        mf.check_relpath(path)
    except ValueError:
        return
    root = "/cache/models/m/rev"
    joined = os.path.normpath(os.path.join(root, path))
    assert joined.startswith(root + "/") and ".." not in path.split("/") and "\\" not in path


@given(st.integers(0, len(GOOD) - 1), st.sampled_from(
    ["", "\x00", "=", "[", "]", '"', "'", "\n", "-", "9", "x", "{", "}", ",", ".", "/", "\\"]),
    st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_mutation_of_a_manifest_parses_or_is_a_manifest_error(pos, char, replace):
    text = GOOD[:pos] + char + GOOD[pos + (1 if replace else 0):]
    try:
        m = mf.parse(text, "mutant.toml")
    except ManifestError as e:
        assert str(e).startswith("mutant.toml: ") and "\n" not in str(e)
        return
    for f in m.files:  # anything accepted is still safe
        mf.check_relpath(f.path)


# ------------------------------------------------------------------ resume, as a property

@pytest.fixture(scope="module")
def module_hub(seeds):
    from tests.hub_server import HubReplica, HubState

    state = HubState()
    data = os.urandom(300_000)
    state.add_repo("prop/model", "p" * 40, {"w.safetensors": data})
    with HubReplica(state) as hub:
        yield hub, data


@given(drops=st.lists(st.integers(0, 299_999), max_size=4), chunk=st.sampled_from([1024, 7_777, 65_536, 300_000]),
       client_chunk=st.sampled_from([4096, 65_536, 1 << 20]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_drop_points_and_chunk_sizes_give_a_verified_file_or_a_clean_error(
        module_hub, tmp_path_factory, monkeypatch, drops, chunk, client_chunk):
    from weightsafe.sources import resume as transfer
    from weightsafe.errors import HubError
    from weightsafe.sources.hub import HubSource
    from weightsafe.sources.resume import RetryPolicy

    hub, data = module_hub
    hub.state.faults.clear()
    for d in sorted(drops):
        hub.state.fault("drop", host="cdn", path="w.safetensors", after=d)
    hub.state.fault("throttle", host="cdn", times=None, chunk=chunk)
    monkeypatch.setattr(transfer, "CHUNK", client_chunk)
    source = HubSource(hub.url, backoff=0.0)
    part = transfer.PartFile(tmp_path_factory.mktemp("p") / "w.part")
    sha = hashlib.sha256(data).hexdigest()
    try:
        result = source.download("prop/model", "p" * 40, "w.safetensors", part, ("sha256",), len(data), f'"{sha}"',
                                 policy=RetryPolicy(attempts=source.retries + 1, backoff=0.0))
    except HubError:
        return  # a clean, typed failure (e.g. several drops at byte 0 in a row)
    assert result.digests["sha256"] == sha and part.path.read_bytes() == data
    assert result.fetched <= len(data) + 0  # never a byte twice: every drop resumes where it stopped


# ------------------------------------------------------------------ disk full

def _limit_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_mid_download_is_exit_4_and_a_later_pull_completes(env, hub, seeds, cache_dir):
    r = seeds["octocoder"]
    limit = 120_000  # every weight file is bigger: writes past this fail with EFBIG
    proc = subprocess.run([sys.executable, "-m", "weightsafe", "pull", "octocoder", "--include", "*.safetensors"],
                          env=env, capture_output=True, text=True, preexec_fn=_limit_file_size(limit), timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr
    assert final_files_are_verified(cache_dir, r)
    served = hub.state.bytes_served("cdn")
    res = run_ws("pull", "octocoder", "--include", "*.safetensors", "--json", env=env)
    assert res.code == 0, res
    assert any(f["resumed_from"] > 0 for f in json.loads(res.out)["files"])
    total = sum(len(d) for p, d in r.files.items() if p.endswith(".safetensors"))
    assert hub.state.bytes_served("cdn") - served < total


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the RLIMIT_FSIZE test still covers a full disk)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_too_little_free_space_is_refused_before_downloading(ws, hub, small_fs):
    (small_fs / "filler").write_bytes(bytes(3 * 1024 * 1024))  # 1 MB left, the model needs 2.7
    res = ws("pull", "octocoder", "--cache-dir", str(small_fs / "cache"))
    assert res.code == 4 and "not enough disk space" in res.err
    assert hub.state.bytes_served("cdn") == 0


def test_a_disk_that_fills_up_mid_pull_is_exit_4_and_the_cache_survives(env, hub, seeds, small_fs):
    import time

    from tests.conftest import popen_ws

    env = {**env, "WEIGHTSAFE_CACHE": str(small_fs / "cache")}
    hub.state.fault("throttle", host="cdn", times=None, bps=300_000)
    proc = popen_ws("pull", "octocoder", "--include", "*.safetensors", env=env)
    deadline = time.monotonic() + 30
    while hub.state.bytes_served("cdn") < 100_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(small_fs / "filler", "wb") as fh:  # someone else fills the disk under the pull
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "Traceback" not in err and "No space left" in err
    r = seeds["octocoder"]
    d = small_fs / "cache" / "models" / "octocoder" / r.commit
    assert all(p.read_bytes() == r.files[p.name] for p in d.glob("*")) if d.exists() else True
    (small_fs / "filler").unlink()
    hub.state.faults.clear()
    res = run_ws("pull", "octocoder", "--include", "*.safetensors", env=env)
    assert res.code == 0, res


def test_a_symlink_planted_in_the_cache_cannot_lead_writes_outside_it(ws, cache_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (cache_dir / "models").mkdir(parents=True)
    (cache_dir / "models" / "codefuse-34b").symlink_to(outside)
    res = ws("pull", "codefuse-34b")
    assert res.code == 2 and "outside the cache" in res.err
    assert not any(outside.iterdir())
