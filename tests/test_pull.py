"""`weightsafe pull`: fetch, hash while downloading, commit only verified files, resume, share work."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import TOKEN, model_dir, popen_ws, run_ws
from tests.replicas import replica_manifest

SEEDS = ["codefuse-34b", "granite-8b-code-instruct-4k", "granite-3.0-1b-a400m-instruct",
         "granite-3.0-2b-instruct", "octocoder", "starcoder-gpteacher-code-instruct"]


def manifest_files(r):
    return {p: d for p, d in r.files.items() if p.endswith((".bin", ".safetensors", ".json", ".model"))}


def assert_cached_exactly(cache_dir, r, files=None):
    d = model_dir(cache_dir, r)
    files = manifest_files(r) if files is None else files
    on_disk = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert on_disk == sorted(files)
    for path, data in files.items():
        assert (d / path).read_bytes() == data, path


@pytest.mark.parametrize("name", SEEDS)
def test_pull_fetches_and_verifies_each_seed_replica(ws, seeds, cache_dir, name):
    res = ws("pull", name)
    assert res.code == 0, res
    assert_cached_exactly(cache_dir, seeds[name])
    assert ws("verify", name).code == 0
    assert ws("path", name).out.strip() == str(model_dir(cache_dir, seeds[name]))


def test_second_pull_uses_no_network_at_all(ws, hub, seeds):
    assert ws("pull", "codefuse-34b").code == 0
    before = len(hub.state.log)
    res = ws("pull", "codefuse-34b", "--json")
    report = json.loads(res.out)
    assert res.code == 0 and report["ok"] and report["bytes_fetched"] == 0
    assert {f["status"] for f in report["files"]} == {"cached"}
    assert len(hub.state.log) == before  # not even a HEAD
    assert report["seconds"] < 1.0


def test_pull_by_repo_id_pins_the_listing_and_verifies_offline(ws, hub, seeds, cache_dir):
    r = seeds["granite-3.0-2b-instruct"]
    res = ws("pull", r.repo)
    assert res.code == 0, res
    d = cache_dir / "models" / r.repo.replace("/", "--") / r.commit
    assert sorted(p.name for p in d.iterdir()) == sorted(r.files)  # README, .gitattributes too
    pinned = list((cache_dir / "manifests").glob("*.toml"))
    assert len(pinned) == 1 and r.commit in pinned[0].name
    text = pinned[0].read_text()
    assert 'source = "hub-lfs"' in text and 'source = "hub-git"' in text
    hub.stop()
    assert ws("verify", r.repo, "--full", HF_HUB_OFFLINE="1").code == 0
    assert ws("pull", r.repo, HF_HUB_OFFLINE="1").code == 0
    assert ws("pull", f"{r.repo}@{r.commit}", HF_HUB_OFFLINE="1").code == 0


def test_include_exclude_choose_one_format(ws, hub, seeds, cache_dir):
    r = seeds["octocoder"]
    res = ws("pull", "octocoder", "--exclude", "*.bin", "--exclude", "pytorch_model.bin.index.json")
    assert res.code == 0, res
    wanted = {p: d for p, d in manifest_files(r).items() if "pytorch_model" not in p}
    assert_cached_exactly(cache_dir, r, wanted)
    served = hub.state.bytes_served("cdn")
    assert served == sum(len(d) for p, d in wanted.items() if p.endswith((".safetensors", ".bin", ".model")))
    assert ws("verify", "octocoder").code == 0  # verifies what was pulled, not the .bin files


def test_hub_disagreeing_with_the_manifest_stops_before_downloading(ws, hub, cache_dir):
    # The shipped codefuse manifest describes the real 9.8 GB shards; the replica hub serves tiny ones.
    shipped = Path(__file__).resolve().parents[1] / "manifests" / "codefuse-34b.toml"
    res = ws("pull", "codefuse-34b", "--manifest", str(shipped))
    assert res.code == 3, res
    assert "pytorch_model-00001-of-00007.bin: size 110" in res.err and "9852638393" in res.err
    assert hub.state.bytes_served("cdn") == 0
    assert not (cache_dir / "models").exists() or not any((cache_dir / "models").rglob("*.bin"))


def test_a_flipped_byte_from_the_cdn_fails_the_pull_and_nothing_corrupt_is_cached(ws, hub, seeds, cache_dir):
    r = seeds["codefuse-34b"]
    hub.state.fault("corrupt", host="cdn", path="pytorch_model-00004-of-00007.bin", where="middle")
    res = ws("pull", "codefuse-34b")
    assert res.code == 1, res
    assert "pytorch_model-00004-of-00007.bin" in res.err and "sha256 from hub-lfs differs" in res.err
    final = model_dir(cache_dir, r) / "pytorch_model-00004-of-00007.bin"
    assert not final.exists()
    assert not list((cache_dir / "partial").rglob("*00004*.part"))  # the bad bytes were discarded
    assert (model_dir(cache_dir, r) / "pytorch_model-00003-of-00007.bin").exists()  # others committed
    res = ws("pull", "codefuse-34b")  # the fault was one-shot: a retry heals
    assert res.code == 0 and final.read_bytes() == r.files["pytorch_model-00004-of-00007.bin"]


def test_card_md5_disagreeing_with_hub_sha256_says_which_source_failed(ws, seeds, tmp_path):
    r = seeds["codefuse-34b"]
    text = replica_manifest(r)
    import hashlib
    good = hashlib.md5(r.files["pytorch_model-00002-of-00007.bin"]).hexdigest()
    bad = tmp_path / "codefuse-34b.toml"
    bad.write_text(text.replace(good, "0" * 32))
    res = ws("pull", "codefuse-34b", "--manifest", str(bad))
    assert res.code == 1
    assert "md5 from card differs" in res.err and "sha256 from hub-lfs matches" in res.err


def test_authorization_goes_to_the_hub_but_never_to_the_cdn(ws, hub, seeds, env):
    r = seeds["granite-8b-code-instruct-4k"]
    hub.state.repos[r.repo].gated = True
    assert ws("pull", "granite-8b-code-instruct-4k").code == 3  # no token: refused with a hint
    res = ws("pull", "granite-8b-code-instruct-4k", HF_TOKEN=TOKEN)
    assert res.code == 0, res
    hub_auth = [q for q in hub.state.requests("hub") if q.headers.get("authorization") == f"Bearer {TOKEN}"]
    assert hub_auth
    cdn = hub.state.requests("cdn")
    assert cdn and not [q for q in cdn if "authorization" in q.headers]


def test_gated_repo_without_token_is_a_one_line_hub_error(ws, hub, seeds):
    hub.state.repos[seeds["octocoder"].repo].gated = True
    res = ws("pull", "bigcode/octocoder")
    assert res.code == 3 and "HF_TOKEN" in res.err and res.err.count("\n") == 1


def test_a_redirect_to_another_host_gets_no_token(ws, hub, seeds):
    hub.state.fault("redirect_other_host", host="hub", path="model.safetensors", times=None)
    res = ws("pull", "granite-3.0-1b-a400m-instruct", HF_TOKEN=TOKEN)
    assert res.code == 1 and "announced 11 bytes" in res.err  # another host serves another file
    other = hub.state.requests("other")
    assert other and not [q for q in other if "authorization" in q.headers]


def test_transient_failures_are_retried_and_a_dropped_transfer_resumes_with_range(ws, hub, seeds, cache_dir):
    r = seeds["octocoder"]
    hub.state.fault("status", host="cdn", path="model-00001-of-00007.safetensors", code=503, times=2)
    hub.state.fault("status", host="hub", path="config.json", code=429, retry_after=1, times=1)
    hub.state.fault("drop", host="cdn", path="model-00002-of-00007.safetensors", after=50_000)
    res = ws("pull", "octocoder", "--include", "*.safetensors", "--include", "config.json")
    assert res.code == 0, res
    ranged = [q for q in hub.state.requests("cdn", "GET") if "model-00002" in q.path and "range" in q.headers]
    assert ranged and ranged[0].headers["range"] == "bytes=50000-"
    assert ranged[0].headers["if-range"].strip('"') == __import__("hashlib").sha256(
        r.files["model-00002-of-00007.safetensors"]).hexdigest()


def test_a_stalled_transfer_times_out_and_resumes(ws, hub, seeds, cache_dir):
    hub.state.fault("stall", host="cdn", path="model.safetensors", seconds=20)
    t = time.monotonic()
    res = ws("pull", "granite-3.0-1b-a400m-instruct", WEIGHTSAFE_READ_TIMEOUT="1")
    assert res.code == 0, res
    assert time.monotonic() - t < 15


def test_offline_pull_of_a_missing_model_is_a_network_error(ws):
    res = ws("pull", "codefuse-34b", HF_HUB_OFFLINE="1")
    assert res.code == 3 and "offline" in res.err


def test_a_tampered_cached_file_is_caught_and_refetched(ws, seeds, cache_dir):
    r = seeds["codefuse-34b"]
    assert ws("pull", "codefuse-34b").code == 0
    target = model_dir(cache_dir, r) / "pytorch_model-00005-of-00007.bin"
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))
    res = ws("verify", "codefuse-34b")
    assert res.code == 1 and "pytorch_model-00005-of-00007.bin" in res.err and "fingerprint" in res.err
    res = ws("verify", "codefuse-34b", "--full")
    assert res.code == 1 and "md5 from card differs" in res.err and "sha256 from hub-lfs differs" in res.err
    res = ws("pull", "codefuse-34b")
    assert res.code == 0 and "failed verification" in res.out
    assert target.read_bytes() == r.files["pytorch_model-00005-of-00007.bin"]


def test_json_report_on_success_and_on_error(ws):
    ok = json.loads(ws("pull", "granite-3.0-2b-instruct", "--json").out)
    assert ok["ok"] and ok["command"] == "pull" and len(ok["files"]) == 8
    bad = ws("pull", "no-such-model", "--json")
    assert bad.code == 2 and json.loads(bad.out)["error"]["exit_code"] == 2


def test_quiet_pull_prints_nothing_on_success(ws):
    res = ws("pull", "granite-3.0-2b-instruct", "-q")
    assert res.code == 0 and res.out == "" and res.err == ""


# ------------------------------------------------------------------ real processes

def _wait_for_cdn_bytes(hub, minimum: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.state.bytes_served("cdn") >= minimum:
            return
        time.sleep(0.02)
    raise AssertionError("the pull never got going")


def test_kill_minus_nine_mid_pull_then_pull_again_resumes(env, hub, seeds, cache_dir):
    r = seeds["octocoder"]
    hub.state.fault("throttle", host="cdn", times=None, bps=400_000)
    total = sum(len(d) for p, d in manifest_files(r).items() if p.endswith((".bin", ".safetensors")))
    proc = popen_ws("pull", "octocoder", env=env)
    _wait_for_cdn_bytes(hub, total // 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = hub.state.bytes_served("cdn")
    assert 0 < first < total
    hub.state.faults.clear()
    res = run_ws("pull", "octocoder", "--json", env=env)
    assert res.code == 0, res
    second = hub.state.bytes_served("cdn") - first
    assert second < total  # what was on disk was not fetched again
    assert first + second <= 1.10 * total
    assert any(f["resumed_from"] > 0 for f in json.loads(res.out)["files"])
    assert_cached_exactly(cache_dir, r)


def test_two_concurrent_pulls_fetch_each_byte_once(env, hub, seeds, cache_dir):
    r = seeds["codefuse-34b"]
    hub.state.fault("throttle", host="cdn", times=None, bps=300_000)
    procs = [popen_ws("pull", "codefuse-34b", "-j", "2", env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("Traceback" not in err for _, err in outs)
    lfs = sum(len(d) for p, d in r.files.items() if p.endswith((".bin", ".model")))
    assert hub.state.bytes_served("cdn") == lfs
    assert_cached_exactly(cache_dir, r)


def test_a_lock_left_by_a_killed_process_does_not_block(env, hub, seeds, cache_dir):
    import subprocess
    import sys

    lock = cache_dir / "locks" / "granite-3.0-2b-instruct" / seeds["granite-3.0-2b-instruct"].commit
    lock.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; "
        f"l = FileLock({str(lock / 'config.json.lock')!r}); l.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (lock / "config.json.lock").exists()
    res = run_ws("pull", "granite-3.0-2b-instruct", env=env, timeout=30)
    assert res.code == 0, res


def test_bad_input_is_one_line_and_a_documented_exit_code(env, tmp_path):
    (tmp_path / "broken.toml").write_text("schema = 1\nname = [\n")
    cases = [(["pull", "no-such-model"], 2), (["pull", "../etc"], 2), (["pull", "a/b/c"], 2),
             (["pull", "x", "--manifest", str(tmp_path / "broken.toml")], 2),
             (["pull", "x", "--manifest", str(tmp_path / "missing.toml")], 2),
             (["verify", "--dir", str(tmp_path)], 2), (["pull", "codefuse-34b", "--jobs", "0"], 2),
             (["pull", "codefuse-34b", "--endpoint", "ftp://x"], 2), (["pull", "codefuse-34b", "--bogus"], 2),
             (["verify", "codefuse-34b", "--dir", str(tmp_path), "--hf-cache"], 2)]
    for args, code in cases:
        res = run_ws(*args, env=env)
        assert res.code == code, (args, res)
        assert res.err.strip().count("\n") == 0 and res.err.startswith("weightsafe: error: "), (args, res)
        as_json = run_ws(*args, "--json", env=env)
        assert as_json.code == code and json.loads(as_json.out)["error"]["exit_code"] == code, (args, as_json)


def test_verify_after_a_failed_pull_reports_the_failed_file_missing(ws, hub):
    hub.state.fault("corrupt", host="cdn", path="model-00002-of-00002.safetensors", times=None)
    assert ws("pull", "granite-3.0-2b-instruct").code == 1
    res = ws("verify", "granite-3.0-2b-instruct")
    assert res.code == 1 and "model-00002-of-00002.safetensors: missing" in res.err


def _pull_on_a_terminal(env: dict, cache: str) -> bytes:
    """Run a pull with stderr on a real pseudo-terminal; returns what the terminal showed."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real terminal's size
    proc = subprocess.Popen([sys.executable, "-m", "weightsafe", "pull", "granite-3.0-2b-instruct",
                             "--cache-dir", cache], env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    return seen


def test_progress_bars_on_a_terminal_and_plain_lines_in_a_log(env):
    seen = _pull_on_a_terminal(env, env["WEIGHTSAFE_CACHE"])
    assert b"%|" in seen and b"8 file(s)" in seen  # tqdm bars: overall and per file
    quiet = _pull_on_a_terminal({**env, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}, env["WEIGHTSAFE_CACHE"] + "-nobars")
    assert b"%|" not in quiet and b"get  config.json" in quiet  # the hub's switch turns bars into lines
    res = run_ws("pull", "granite-3.0-2b-instruct", "--cache-dir", env["WEIGHTSAFE_CACHE"] + "-log", env=env)
    assert res.code == 0 and "%|" not in res.err and "  get  config.json" in res.err
