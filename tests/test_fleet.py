"""A fleet from one copy: many machines pull the same model from one nginx mirror at once.
Every node verifies, every byte is served once per node (counted from nginx's own access log),
nothing is retried; and nodes sharing one cache directory (processes standing in for machines
on NFS/CephFS) fetch each file once between them."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

import weightsafe
from tests.conftest import popen_ws
from tests.nginx import nginx

REPO = "ibm-granite/granite-8b-code-instruct-4k"
NODES = 8


@pytest.fixture
def fleet_mirror(ws, hub, seeds, tmp_path):
    assert ws("pull", REPO).code == 0
    assert ws("mirror", "export", REPO, str(tmp_path / "www")).code == 0
    hub.stop()  # the origin is gone: the fleet has only the mirror
    addresses = tuple(f"127.0.0.{i}" for i in range(1, NODES + 2))
    # slowed to ~2 s per node, so the pulls really overlap on a 2-core CI machine
    with nginx(tmp_path / "www", tmp_path / "nginx", addresses, limit_rate="60k") as server:
        yield server, seeds["granite-8b-code-instruct-4k"]


def _run_all(procs) -> list[dict]:
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "retry" not in err, err
        reports.append(json.loads(out))
    return reports


def _file_bytes(server, commit: str) -> dict[tuple[str, str], list[int]]:
    """(server address, file) -> body bytes of each GET that served the model's files."""
    served = defaultdict(list)
    prefix = f"/{REPO}/resolve/{commit}/"
    for s in server.served():
        if s.method == "GET" and s.uri.startswith(prefix) and "/.weightsafe/" not in s.uri:
            assert s.status in (200, 206), s
            served[(s.server_addr, s.uri[len(prefix):])].append(s.body_bytes)
    return served


def test_eight_nodes_at_once_each_get_every_byte_exactly_once(fleet_mirror, env, tmp_path):
    server, r = fleet_mirror
    nodes = [f"127.0.0.{i}" for i in range(2, NODES + 2)]
    procs = [popen_ws("pull", REPO, "--endpoint", server.url(addr), "--json",
                      env={**env, "WEIGHTSAFE_CACHE": str(tmp_path / f"node-{addr}")}) for addr in nodes]
    _run_all(procs)
    served = _file_bytes(server, r.commit)
    for addr in nodes:
        assert weightsafe.verify(REPO, cache_dir=tmp_path / f"node-{addr}", full=True).ok
        for path, data in r.files.items():
            assert served[(addr, path)] == [len(data)], (addr, path, served[(addr, path)])
    assert not [s for s in server.served() if s.status >= 500 or s.status == 429]
    total = sum(len(d) for d in r.files.values())
    assert sum(sum(v) for v in served.values()) == NODES * total  # 1x per node, not a byte more


def test_nodes_sharing_one_cache_directory_fetch_each_file_once(fleet_mirror, env, tmp_path):
    server, r = fleet_mirror
    shared = tmp_path / "shared-cache"  # one directory, as on NFS/CephFS; each process a "machine"
    nodes = [f"127.0.0.{i}" for i in range(2, 6)]
    procs = [popen_ws("pull", REPO, "--endpoint", server.url(addr), "--json", "--jobs", "2",
                      env={**env, "WEIGHTSAFE_CACHE": str(shared)}) for addr in nodes]
    outcomes = [f for report in _run_all(procs) for f in report["files"]]
    assert sorted(f["path"] for f in outcomes if f["status"] == "downloaded") == sorted(r.files)
    # the nodes really met: some waited on another's lock and took its verified file
    assert any(f["message"] == "fetched by another process" for f in outcomes), [(f["path"], f["status"], f["message"]) for f in outcomes]
    served = _file_bytes(server, r.commit)
    for path, data in r.files.items():
        fetched = [n for (addr, p), sizes in served.items() if p == path for n in sizes]
        assert fetched == [len(data)], (path, fetched)
    assert weightsafe.verify(REPO, cache_dir=shared, full=True).ok
    assert not list((shared / "partial").rglob("*.part"))
    assert os.listdir(shared / "models")


def test_clients_that_failed_together_do_not_retry_together():
    """A fleet that hit a 503 at the same moment spreads its retries (jittered backoff) instead
    of coming back as one wave; a server's Retry-After still wins (tested in test_reliability)."""
    from urllib3.util.retry import RequestHistory

    from weightsafe.sources.http import HttpClient

    retry = HttpClient("http://127.0.0.1:9", backoff=0.5).session.get_adapter("http://127.0.0.1:9").max_retries
    failed_twice = retry.new(history=(RequestHistory("GET", "/", None, 503, None),) * 2)
    waits = {round(failed_twice.get_backoff_time(), 6) for _ in range(50)}
    assert len(waits) > 10  # spread out, not one instant
    assert all(1.0 <= w <= 1.5 for w in waits)  # 0.5 * 2 ** (2 - 1), plus up to 0.5 s of jitter
