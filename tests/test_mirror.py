"""A static mirror served by real nginx: no hub headers, no API, just files, Range and ETags.
`pull --endpoint` against it works from the manifest's digests alone."""

from __future__ import annotations

import pytest

from tests.conftest import model_dir
from tests.nginx import nginx


@pytest.fixture
def mirror(seeds, tmp_path):
    r = seeds["codefuse-34b"]
    root = tmp_path / "www"
    base = root / r.repo / "resolve" / r.commit
    for path, data in r.files.items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(data)
    with nginx(root, tmp_path) as server:
        yield server.url(), base, server.log


def test_pull_from_a_static_nginx_mirror_verifies_against_the_manifest(ws, mirror, seeds, cache_dir):
    url, _, _ = mirror
    res = ws("pull", "codefuse-34b", "--endpoint", url)
    assert res.code == 0, res
    r = seeds["codefuse-34b"]
    d = model_dir(cache_dir, r)
    for path, data in r.files.items():
        if path.endswith((".bin", ".json", ".model")):
            assert (d / path).read_bytes() == data


def test_a_corrupt_file_on_the_mirror_is_refused(ws, mirror, seeds, cache_dir):
    url, base, _ = mirror
    target = base / "pytorch_model-00006-of-00007.bin"
    data = bytearray(target.read_bytes())
    data[5000] ^= 0x10
    target.write_bytes(bytes(data))
    res = ws("pull", "codefuse-34b", "--endpoint", url)
    assert res.code == 1
    assert "pytorch_model-00006-of-00007.bin: md5 from card differs" in res.err
    assert not (model_dir(cache_dir, seeds["codefuse-34b"]) / "pytorch_model-00006-of-00007.bin").exists()


def test_resume_against_nginx_uses_its_etag_with_if_range(ws, mirror, seeds, cache_dir):
    """A part left by an earlier run is resumed with Range + If-Range on nginx's own ETag."""
    url, base, log = mirror
    r = seeds["codefuse-34b"]
    path = "pytorch_model-00001-of-00007.bin"
    import requests

    from weightsafe.sources.resume import PartFile, PartState

    head = requests.head(f"{url}/{r.repo}/resolve/{r.commit}/{path}")
    part = PartFile(cache_dir / "partial" / "codefuse-34b" / r.commit / (path + ".part"))
    part.path.parent.mkdir(parents=True)
    part.path.write_bytes(r.files[path][:50_000])
    part.save_state(PartState(head.headers["ETag"], len(r.files[path]), head.headers["ETag"]))
    res = ws("pull", "codefuse-34b", "--endpoint", url, "--include", path, "--json")
    assert res.code == 0, res
    import json

    outcome = json.loads(res.out)["files"][0]
    assert outcome["resumed_from"] == 50_000 and outcome["fetched"] == len(r.files[path]) - 50_000
    assert " 206 " in log.read_text()
