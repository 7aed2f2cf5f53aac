"""The hub replica is faithful: huggingface_hub's own download functions succeed against it."""

from __future__ import annotations

import hashlib
import os

import requests


def test_snapshot_download_by_huggingface_hub_succeeds(hub, seeds, tmp_path, env):
    from huggingface_hub import snapshot_download

    r = seeds["granite-8b-code-instruct-4k"]
    path = snapshot_download(r.repo, cache_dir=tmp_path / "hf", endpoint=hub.url)
    assert sorted(os.listdir(path)) == sorted(r.files)
    for name, data in r.files.items():
        with open(os.path.join(path, name), "rb") as fh:
            assert fh.read() == data
    assert hub.state.requests("cdn"), "LFS files must come from the CDN host after a redirect"


def test_hf_hub_download_at_a_pinned_commit_and_tree_listing(hub, seeds, tmp_path, env):
    from huggingface_hub import HfApi, hf_hub_download

    r = seeds["codefuse-34b"]
    path = hf_hub_download(r.repo, "pytorch_model-00003-of-00007.bin", revision=r.commit,
                           cache_dir=tmp_path / "hf", endpoint=hub.url)
    with open(path, "rb") as fh:
        assert fh.read() == r.files["pytorch_model-00003-of-00007.bin"]
    tree = list(HfApi(endpoint=hub.url).list_repo_tree(r.repo, revision=r.commit, recursive=True))
    assert sorted(e.path for e in tree) == sorted(r.files)  # across several Link-paginated pages
    lfs = {e.path: e.lfs.sha256 for e in tree if getattr(e, "lfs", None)}
    data = r.files["pytorch_model-00001-of-00007.bin"]
    assert lfs["pytorch_model-00001-of-00007.bin"] == hashlib.sha256(data).hexdigest()


def test_head_speaks_the_hub_headers(hub, seeds):
    r = seeds["codefuse-34b"]
    url = f"{hub.url}/{r.repo}/resolve/main/pytorch_model-00001-of-00007.bin"
    head = requests.head(url, allow_redirects=False)
    data = r.files["pytorch_model-00001-of-00007.bin"]
    assert head.status_code == 302 and head.headers["Location"].startswith(hub.cdn_url)
    assert head.headers["X-Repo-Commit"] == r.commit
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(head.headers["X-Linked-Size"]) == len(data)
    missing = requests.head(f"{hub.url}/{r.repo}/resolve/main/nope.bin", allow_redirects=False)
    assert missing.status_code == 404 and missing.headers["X-Repo-Commit"] == r.commit
    part = requests.get(head.headers["Location"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    stale = requests.get(head.headers["Location"], headers={"Range": "bytes=10-19", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
