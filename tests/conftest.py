"""Fixtures: the seed replicas, a live hub replica per test, an isolated environment, and
helpers that run weightsafe the way users do (a real process) or in-process (fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import replicas as _replicas
from tests.hub_server import HubReplica, HubState

TOKEN = "hf_replica_token_0123456789"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def seeds() -> dict[str, _replicas.Replica]:
    return _replicas.build_all()


@pytest.fixture(scope="session")
def replica_manifests(seeds, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("replica-manifests")
    for name, r in seeds.items():
        (d / f"{name}.toml").write_text(_replicas.replica_manifest(r))
    return d


@pytest.fixture
def hub(seeds):
    state = HubState()
    state.tokens.add(TOKEN)
    state.tree_page_size = 5  # exercise Link-header pagination
    for r in seeds.values():
        state.add_replica(r)
    with HubReplica(state) as server:
        yield server


@pytest.fixture
def env(hub, replica_manifests, tmp_path, monkeypatch) -> dict:
    """An isolated environment pointing at the hub replica; also applied to this process."""
    values = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "WEIGHTSAFE_CACHE": str(tmp_path / "cache"),
        "WEIGHTSAFE_MANIFEST_PATH": str(replica_manifests),
        "WEIGHTSAFE_READ_TIMEOUT": "2",
        "WEIGHTSAFE_BACKOFF": "0.05",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return dict(os.environ)


@pytest.fixture
def cache_dir(env) -> Path:
    return Path(env["WEIGHTSAFE_CACHE"])


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def run_ws(*args: str, env: dict, timeout: float = 120, extra_env: dict | None = None) -> Result:
    """Run the real console entry point in a fresh process."""
    full = {**env, **(extra_env or {})}
    proc = subprocess.run([sys.executable, "-m", "weightsafe", *args], env=full, capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


def popen_ws(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "weightsafe", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def ws(env):
    """In-process CLI (fast): ws("pull", "codefuse-34b") -> Result."""
    from click.testing import CliRunner

    from weightsafe.cli import main

    def call(*args: str, **extra_env) -> Result:
        runner = CliRunner()
        res = runner.invoke(main, list(args), env={k: str(v) for k, v in extra_env.items()},
                            catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    return call


def model_dir(cache: Path, r: _replicas.Replica) -> Path:
    return cache / "models" / r.name.replace("/", "--") / r.commit
