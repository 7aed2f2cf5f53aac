"""A caching hub mirror in front of the origin: olah (pip install olah), proxying the local hub
replica on loopback. Pulls through it verify like pulls from the hub, and a second machine is
served from olah's cache: the origin sends each byte once, and keeps serving nobody once the
mirror holds the model."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

import weightsafe
from tests.conftest import ROOT
from tests.daemon import daemon, free_port, port_open

REPO = "ibm-granite/granite-3.0-2b-instruct"


def olah_cli() -> str | None:
    """olah lives in its own virtualenv (its pins differ from ours): .ci/run makes .venv-olah."""
    for candidate in (os.environ.get("WEIGHTSAFE_TEST_OLAH"), ROOT / ".venv-olah" / "bin" / "olah-cli",
                      Path(sys.executable).with_name("olah-cli"), shutil.which("olah-cli")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


@pytest.fixture
def olah(hub, tmp_path):
    cli = olah_cli()
    if not cli:
        pytest.skip("olah is not installed (.ci/run puts it in .venv-olah: python3 -m venv .venv-olah && "
                    ".venv-olah/bin/pip install olah)")
    port = free_port()
    hub_netloc, cdn_netloc = hub.url.split("://")[1], hub.cdn_url.split("://")[1]
    # every upstream olah knows of is the replica on loopback: nothing can leave the machine
    args = [cli, "--host", "127.0.0.1", "--port", str(port), "--hf-scheme", "http", "--hf-netloc", hub_netloc,
            "--hf-lfs-netloc", cdn_netloc, "--mirror-scheme", "http", "--mirror-netloc", f"127.0.0.1:{port}",
            "--mirror-lfs-netloc", f"127.0.0.1:{port}", "--repos-path", str(tmp_path / "olah-repos"),
            "--log-path", str(tmp_path / "olah-logs")]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with daemon(args, tmp_path, "olah", port_open("127.0.0.1", port), env=env):
        yield f"http://127.0.0.1:{port}"


def _origin_bytes(hub) -> int:
    return sum(r.bytes_sent for r in hub.state.log)


def test_pull_through_olah_verifies_and_the_second_machine_costs_the_origin_nothing(ws, hub, olah, seeds, tmp_path):
    """ORG/REPO through olah: the file list from its API proxy, each LFS file judged by the sha256
    olah serves as its ETag (as the hub's X-Linked-Etag), every other by its git blob id."""
    spec = REPO
    size = sum(len(d) for d in seeds["granite-3.0-2b-instruct"].files.values())
    first, second = tmp_path / "node-1", tmp_path / "node-2"
    slow = {"WEIGHTSAFE_READ_TIMEOUT": "30"}  # olah answers a cold HEAD only after asking the origin
    res = ws("pull", spec, "--endpoint", olah, "--cache-dir", str(first), **slow)
    assert res.code == 0, res
    assert weightsafe.verify(spec, cache_dir=first, full=True).ok
    after_first = _origin_bytes(hub)
    assert after_first >= size
    res = ws("pull", spec, "--endpoint", olah, "--cache-dir", str(second), **slow)
    assert res.code == 0, res
    assert weightsafe.verify(spec, cache_dir=second, full=True).ok
    # olah may revalidate metadata with the origin, but no file byte is sent twice
    served_again = _origin_bytes(hub) - after_first
    assert served_again < size // 10, served_again
