"""Hub trust (issue 12, class 9): a pull pinned to a full commit caches only that commit, and a hub
answering something that is not a commit id is refused before anything is written."""

from __future__ import annotations

import threading
import time

import pytest


def test_a_hub_answering_another_commit_for_a_full_commit_is_refused(ws, hub, seeds, cache_dir):
    r = seeds["granite-3.0-2b-instruct"]
    asked = "a" * 40
    hub.state.repos[r.repo].refs[asked] = r.commit  # the hub resolves A to B
    res = ws("pull", f"{r.repo}@{asked}")
    assert res.code == 3 and f"the hub answered commit {r.commit}" in res.err, res
    assert not (cache_dir / "models" / r.repo.replace("/", "--") / asked).exists()
    assert not list((cache_dir / "manifests").glob("*.toml")) if (cache_dir / "manifests").exists() else True


@pytest.mark.parametrize("answer", [".", "a:b", "con", "..", "A" * 40])
def test_a_hub_answering_a_commit_that_is_not_a_commit_id_is_refused(ws, hub, seeds, cache_dir, answer):
    r = seeds["granite-3.0-2b-instruct"]
    hub.state.add_repo("evil/repo", answer, r.files)
    res = ws("pull", "evil/repo")
    assert res.code == 3 and "not a full 40-hex commit id" in res.err, res
    assert not (cache_dir / "models" / "evil--repo").exists()


@pytest.mark.parametrize("rev", [".", "a:b", "con", "..", "x" * 300, "main\x9b"])
def test_odd_revisions_asked_for_are_one_line_errors(ws, hub, rev):
    res = ws("pull", f"ibm-granite/granite-3.0-2b-instruct@{rev}")
    assert res.code in (2, 3) and res.err.count("\n") == 1, res


def test_a_trickling_transfer_is_cut_by_the_minimum_speed_then_fails_with_exit_3(ws, hub, cache_dir):
    hub.state.fault("throttle", host="cdn", path="model.safetensors", times=None, bps=4000)
    t = time.monotonic()
    res = ws("pull", "granite-3.0-1b-a400m-instruct", WEIGHTSAFE_MIN_SPEED="200000",
             WEIGHTSAFE_MIN_SPEED_WINDOW="0.5", WEIGHTSAFE_RETRIES="1", WEIGHTSAFE_BACKOFF="0")
    assert res.code == 3 and "slower than WEIGHTSAFE_MIN_SPEED=200000 B/s" in res.err, res
    assert time.monotonic() - t < 20


def test_a_transfer_cut_for_speed_resumes_where_it_stopped(ws, hub, seeds, cache_dir):
    """The guard cuts the trickle once; the resumed request (no longer throttled) completes."""
    fault = hub.state.fault("throttle", host="cdn", path="model.safetensors", times=None, bps=4000)
    threading.Timer(1.5, lambda: hub.state.faults.remove(fault)).start()
    res = ws("pull", "granite-3.0-1b-a400m-instruct", WEIGHTSAFE_MIN_SPEED="200000",
             WEIGHTSAFE_MIN_SPEED_WINDOW="0.5", WEIGHTSAFE_BACKOFF="0.5")
    assert res.code == 0, res
    ranged = [q for q in hub.state.requests("cdn") if "range" in q.headers]
    assert ranged, "the cut transfer resumed with a Range request"


@pytest.mark.parametrize("rev", [".", "a:b", "con", "x\u0085"])
def test_a_manifest_with_an_odd_revision_is_a_one_line_usage_error(ws, hub, tmp_path, rev):
    text = (f'schema = 1\nname = "odd"\nrepo = "o/odd"\nrevision = "{rev}"\n'
            '[[files]]\npath = "config.json"\nsize = 2\n')
    (tmp_path / "m.toml").write_text(text)
    res = ws("pull", "odd", "--manifest", str(tmp_path / "m.toml"))
    assert res.code == 2 and res.err.count("\n") == 1, res
