"""What a deployment pipeline meets: read-only volumes, Ctrl-C and SIGTERM, retries it can see in
its log, a hub that is down, an endpoint with the wrong scheme, and JSON from every command."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import model_dir, popen_ws, run_ws


@contextmanager
def read_only_view(src: Path, where: Path):
    """A real read-only bind mount of ``src`` at ``where`` (what a read-only PVC or image layer is)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    where.mkdir(parents=True)
    try:
        subprocess.run(["mount", "--bind", str(src), str(where)], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot bind-mount here: {e}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True, capture_output=True)
        probe = where / ".probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False, capture_output=True)


def test_a_read_only_cache_verifies_checks_and_pulls_offline(env, seeds, ws, cache_dir, tmp_path):
    r = seeds["codefuse-34b"]
    repo_seed = seeds["granite-3.0-2b-instruct"]
    assert ws("pull", "codefuse-34b").code == 0
    assert ws("pull", repo_seed.repo).code == 0
    with read_only_view(cache_dir, tmp_path / "ro-cache") as ro:
        ro_env = {**env, "WEIGHTSAFE_CACHE": str(ro)}
        for args in (["verify", "codefuse-34b"], ["verify", "codefuse-34b", "--full"],
                     ["verify", repo_seed.repo, "--full"], ["check", "codefuse-34b", "--device", "cpu"],
                     ["pull", "codefuse-34b", "--offline"], ["pull", repo_seed.repo, "--offline"],
                     ["path", "codefuse-34b"], ["cache", "ls"]):
            res = run_ws(*args, env=ro_env)
            assert res.code == 0, (args, res)
        assert run_ws("path", "codefuse-34b", env=ro_env).out.strip() == str(model_dir(ro, r))


def test_a_read_only_hf_cache_and_deploy_dir_verify(env, seeds, ws, tmp_path):
    r = seeds["granite-3.0-2b-instruct"]
    deploy = tmp_path / "deploy"
    assert ws("pull", r.repo, "--hf-cache", "--local-dir", str(deploy)).code == 0
    with read_only_view(Path(env["HF_HOME"]) / "hub", tmp_path / "ro-hub") as ro_hub, \
            read_only_view(deploy, tmp_path / "ro-deploy") as ro_deploy:
        ro_env = {**env, "HF_HUB_CACHE": str(ro_hub)}
        for args in (["verify", r.repo, "--hf-cache", "--full"], ["verify", "--local-dir", str(ro_deploy), "--full"],
                     ["check", "--local-dir", str(ro_deploy), "--device", "cpu"]):
            res = run_ws(*args, env=ro_env)
            assert res.code == 0, (args, res)


def _wait_for_part(cache_dir: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = [p for p in (cache_dir / "partial").rglob("*.part") if p.stat().st_size > 0] \
            if (cache_dir / "partial").is_dir() else []
        if parts:
            return parts[0]
        time.sleep(0.05)
    raise AssertionError("no partial download appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_every_worker_within_a_second_and_the_pull_resumes(env, seeds, hub, cache_dir, sig):
    r = seeds["codefuse-34b"]
    # every shard trickles in, so every worker is mid-transfer when the signal comes
    hub.state.fault("throttle", host="cdn", path="*.bin", bps=2000, times=None)
    proc = popen_ws("pull", "codefuse-34b", "--jobs", "4", env=env)
    _wait_for_part(cache_dir)
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(sig)
    proc.send_signal(sig)  # a second Ctrl-C while stopping: still one clean line
    _, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - start
    assert proc.returncode == 130, err
    print(f"stopped {elapsed:.3f} s after the signal")
    assert elapsed < 1.0, elapsed
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("weightsafe: interrupted")
    kept = sum(p.stat().st_size for p in (cache_dir / "partial").rglob("*.part"))
    assert kept > 0
    hub.state.faults.clear()
    res = run_ws("pull", "codefuse-34b", "--json", env=env)
    assert res.code == 0, res
    report = json.loads(res.out)
    assert sum(f["resumed_from"] for f in report["files"]) > 0
    for path, data in r.files.items():
        if path.endswith(".bin"):
            assert (model_dir(cache_dir, r) / path).read_bytes() == data


def test_a_cancel_event_stops_an_api_pull(env, seeds, hub, cache_dir):
    import weightsafe

    hub.state.fault("throttle", host="cdn", path="*.bin", bps=2000, times=None)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(weightsafe.Interrupted) as stopped:
        weightsafe.pull("codefuse-34b", cancel=cancel)
    assert stopped.value.exit_code == 130 and time.monotonic() - start < 3
    assert list((cache_dir / "partial").rglob("*.part"))


def test_retries_are_visible_one_line_each(env, hub, ws):
    hub.state.fault("status", host="hub", path="config.json", code=503, times=2)
    hub.state.fault("drop", host="cdn", path="model-00001-of-00002.safetensors", after=1000, times=1)
    res = run_ws("pull", "granite-3.0-2b-instruct", env=env)
    assert res.code == 0, res
    retries = [line for line in res.err.splitlines() if line.startswith("weightsafe: retry:")]
    assert [line.split("; ")[-1].split(" in ")[0] for line in retries if "HTTP 503" in line] == [
        "retry 1/5", "retry 2/5"], res.err  # counted against the budget (WEIGHTSAFE_RETRIES=5), which stays put
    assert any("model-00001-of-00002.safetensors" in line and "resuming" in line for line in retries), res.err
    quiet = run_ws("pull", "granite-3.0-1b-a400m-instruct", "--quiet", env=env)
    assert quiet.code == 0 and quiet.err == ""


def test_an_unreachable_hub_falls_back_to_the_snapshot_pinned_for_that_revision(env, seeds, hub, ws):
    r = seeds["granite-3.0-2b-instruct"]
    assert ws("pull", r.repo).code == 0
    hub.stop()
    res = run_ws("pull", r.repo, "--json", env=env, extra_env={"WEIGHTSAFE_RETRIES": "0"})
    assert res.code == 0, res
    assert any("could not be reached" in n for n in json.loads(res.out)["notes"])
    # a manifest name that is verified in the cache never needs the hub
    assert run_ws("pull", "granite-3.0-2b-instruct", env=env).code != 0  # not pulled under this name yet
    never = run_ws("pull", "other-org/never-pulled", env=env, extra_env={"WEIGHTSAFE_RETRIES": "0"})
    assert never.code == 3 and "connection refused" in never.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_https_endpoint_answered_in_plain_http_says_so(env, hub):
    res = run_ws("pull", "granite-3.0-2b-instruct", "--endpoint", hub.url.replace("http://", "https://"),
                 env=env, extra_env={"WEIGHTSAFE_RETRIES": "0"})
    assert res.code == 3 and "speaks plain HTTP (use http://)" in res.err, res


def test_a_plain_http_endpoint_answered_by_tls_says_so(env, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], capture_output=True)
    if made.returncode:
        pytest.skip("openssl cannot make a certificate here")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        res = run_ws("pull", "granite-3.0-2b-instruct", "--endpoint", f"http://127.0.0.1:{port}", env=env,
                     extra_env={"WEIGHTSAFE_RETRIES": "0"})
    finally:
        stop.set()
        server.close()
    assert res.code == 3 and "speaks HTTPS (use https://)" in res.err, res


def test_every_command_answers_in_json(env, seeds, ws):
    assert ws("pull", "granite-3.0-2b-instruct").code == 0
    for args in (["pull", "granite-3.0-2b-instruct"], ["pull", "codefuse-34b", "--dry-run"],
                 ["verify", "granite-3.0-2b-instruct"], ["check", "granite-3.0-2b-instruct", "--structure-only"],
                 ["list"], ["show", "codefuse-34b"], ["path", "granite-3.0-2b-instruct"], ["cache", "ls"],
                 ["cache", "gc", "--dry-run"], ["cache", "rm", "granite-3.0-2b-instruct", "--dry-run"],
                 ["path", "codefuse-34b"], ["verify", "codefuse-34b"], ["pull", "nope"]):
        res = ws(*args, "--json")
        doc = json.loads(res.out)
        assert ("error" in doc) == (res.code != 0), (args, res)
    doc = json.loads(ws("path", "granite-3.0-2b-instruct", "--json").out)
    assert doc["path"] == str(model_dir(Path(env["WEIGHTSAFE_CACHE"]), seeds["granite-3.0-2b-instruct"]))


def test_verify_exclude_does_not_call_excluded_files_unexpected(ws, seeds, tmp_path):
    from tests.replicas import replica_manifest, write_replica
    r = seeds["octocoder"]
    d = write_replica(r, tmp_path / "vol")
    m = tmp_path / "octocoder.toml"
    m.write_text(replica_manifest(r))
    res = ws("verify", "--dir", str(d), "--manifest", str(m), "--exclude", "*.bin", "--exclude", "*.bin.index.json",
             "--json")
    report = json.loads(res.out)
    assert res.code == 0, res
    paths = {f["path"] for f in report["files"]}
    assert not any(p.endswith(".bin") or p.endswith(".bin.index.json") for p in paths)
    assert any(p.endswith(".safetensors") for p in paths)
