"""`cache ls/rm/gc` and `pull --dry-run`: what is cached, removing it, garbage, and deciding before acting."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import model_dir, run_ws


def test_cache_ls_shows_one_commit_once_under_both_names(ws, seeds, cache_dir):
    r = seeds["granite-3.0-2b-instruct"]
    assert ws("pull", "granite-3.0-2b-instruct").code == 0
    assert ws("pull", r.repo).code == 0
    assert ws("pull", "codefuse-34b").code == 0
    models = json.loads(ws("cache", "ls", "--json").out)["models"]
    assert len(models) == 2
    granite = next(m for m in models if m["repo"] == r.repo)
    assert set(granite["names"]) == {"granite-3.0-2b-instruct", r.repo}
    assert granite["commit"] == r.commit and granite["last_verified"]
    assert granite["bytes"] >= sum(len(d) for d in r.files.values() if True) - len(r.files["README.md"]) * 0
    text = ws("cache", "ls").out
    assert "granite-3.0-2b-instruct, ibm-granite/granite-3.0-2b-instruct" in text and "2 model(s)" in text


def test_cache_rm_needs_yes_and_removes_every_trace(ws, seeds, cache_dir):
    r = seeds["codefuse-34b"]
    assert ws("pull", "codefuse-34b").code == 0
    refused = ws("cache", "rm", "codefuse-34b")
    assert refused.code == 2 and "--yes" in refused.err
    assert model_dir(cache_dir, r).is_dir()
    dry = json.loads(ws("cache", "rm", "codefuse-34b", "--dry-run", "--json").out)
    assert dry["dry_run"] and {x["kind"] for x in dry["removed"]} >= {"model", "records"}
    assert model_dir(cache_dir, r).is_dir()
    done = ws("cache", "rm", "codefuse-34b", "--yes", "--json")
    assert done.code == 0 and json.loads(done.out)["bytes"] > 0
    assert not model_dir(cache_dir, r).exists()
    assert not (cache_dir / "records" / "codefuse-34b").exists()
    assert ws("verify", "codefuse-34b").code == 2
    assert ws("cache", "rm", "codefuse-34b", "--yes").code == 2  # nothing left to remove


def test_cache_gc_removes_abandoned_parts_but_never_one_a_pull_holds(ws, env, seeds, hub, cache_dir):
    r = seeds["codefuse-34b"]
    # a pull that died leaves a partial download behind
    hub.state.fault("drop", host="cdn", path="pytorch_model-00001-of-00007.bin", after=20, times=1)
    hub.state.fault("status", host="cdn", path="pytorch_model-00001-of-00007.bin", code=500, times=None, skip=1)
    assert run_ws("pull", "codefuse-34b", env=env, extra_env={"WEIGHTSAFE_RETRIES": "0"}).code == 3
    hub.state.faults.clear()
    parts = list((cache_dir / "partial").rglob("*.part"))
    assert parts
    # and another process is busy with a second one
    busy = cache_dir / "partial" / "codefuse-34b" / r.commit / "tokenizer.model.part"
    busy.write_bytes(b"x" * 10)
    lock = cache_dir / "locks" / "codefuse-34b" / r.commit / "tokenizer.model.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from filelock import FileLock; "
        f"l = FileLock({str(lock)!r}); l.acquire(); print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        dry = json.loads(ws("cache", "gc", "--dry-run", "--json").out)
        assert any(x["path"] == str(parts[0]) and x["kind"] == "partial" for x in dry["removed"])
        assert parts[0].exists()
        res = ws("cache", "gc", "--json")
        report = json.loads(res.out)
        assert res.code == 0 and not parts[0].exists()
        assert busy.exists() and any(str(busy) in s for s in report["skipped"])
    finally:
        holder.kill()
        holder.wait()
    assert ws("pull", "codefuse-34b").code == 0


def test_dry_run_says_what_would_move_and_changes_nothing(ws, seeds, hub, cache_dir):
    r = seeds["codefuse-34b"]
    res = ws("pull", "codefuse-34b", "--dry-run", "--json")
    plan = json.loads(res.out)
    assert res.code == 0 and plan["dry_run"]
    expected = sum(len(d) for p, d in r.files.items() if p.endswith((".bin", ".json", ".model")))
    assert plan["bytes_to_fetch"] == expected and {f["action"] for f in plan["files"]} == {"fetch"}
    assert hub.state.bytes_served("cdn") == 0
    assert not (cache_dir / "models").exists() and not (cache_dir / "partial").exists()
    assert ws("pull", "codefuse-34b", "--include", "*.json").code == 0
    plan = json.loads(ws("pull", "codefuse-34b", "--dry-run", "--json").out)
    actions = {f["path"]: f["action"] for f in plan["files"]}
    assert actions["config.json"] == "cached" and actions["tokenizer.model"] == "fetch"
    text = ws("pull", "codefuse-34b", "--dry-run").out
    assert "to fetch" in text and "dry run" in text
