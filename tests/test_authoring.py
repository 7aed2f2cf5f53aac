"""`weightsafe manifest create / lint / pin`: a manifest for any model, from the hub or from disk."""

from __future__ import annotations

import hashlib
import json

from weightsafe import manifest as mf
from weightsafe.authoring import from_dir, pin
from weightsafe.sources.hub import HubSource
from weightsafe.lint import lint
from tests.conftest import run_ws
from tests.replicas import fake_commit, md5_card, write_replica

SHARD2 = "pytorch_model-00002-of-00007.bin"


def test_create_pins_the_commit_and_imports_the_card_then_pull_round_trips(ws, seeds, tmp_path, cache_dir):
    r = seeds["codefuse-34b"]
    out = tmp_path / "codefuse.toml"
    res = ws("manifest", "create", f"{r.repo}@main", "-o", str(out), "--name", "codefuse")
    assert res.code == 0, res
    m = mf.load(out)
    assert m.pinned and m.revision == r.commit and m.name == "codefuse"
    assert sorted(f.path for f in m.files) == sorted(r.files)
    for f in m.files:
        assert f.size == len(r.files[f.path])
    shard = m.file(SHARD2)
    assert shard.digest("md5").source == "card"
    assert shard.digest("md5").hex == hashlib.md5(r.files[SHARD2]).hexdigest()
    assert shard.digest("sha256").source == "hub-lfs"
    assert m.file("config.json").digest("git-sha1").source == "hub-git"
    assert "card" in m.sources and "hub-lfs" in m.sources
    assert ws("manifest", "lint", "--strict", str(out)).code == 0
    res = ws("pull", "codefuse", "--manifest", str(out))
    assert res.code == 0, res
    assert (cache_dir / "models" / "codefuse" / r.commit / SHARD2).read_bytes() == r.files[SHARD2]


def test_a_wrong_card_md5_is_kept_so_the_pull_fails_naming_the_card(ws, hub, seeds, tmp_path):
    r = seeds["codefuse-34b"]
    md5s = {p: hashlib.md5(r.files[p]).hexdigest() for p in r.md5_card}
    md5s[SHARD2] = "0" * 32  # computed before a corrupted upload, as with CodeFuse-13B
    files = {**r.files, "README.md": b"# card\n" + md5_card(md5s)}
    commit = fake_commit("codefuse-bad-card")
    hub.state.add_repo(r.repo, commit, files, branch="bad-card")
    out = tmp_path / "bad.toml"
    assert ws("manifest", "create", f"{r.repo}@bad-card", "-o", str(out), "--name", "bad").code == 0
    assert mf.load(out).revision == commit
    res = ws("pull", "bad", "--manifest", str(out))
    assert res.code == 1
    assert f"{SHARD2}: md5 from card differs" in res.err and "sha256 from hub-lfs matches" in res.err


def test_create_notes_a_card_md5_that_the_cached_bytes_do_not_have(ws, hub, seeds, tmp_path):
    r = seeds["codefuse-34b"]
    assert ws("pull", "codefuse-34b").code == 0  # the shipped (replica) manifest, same commit
    md5s = {SHARD2: "f" * 32}
    hub.state.add_repo(r.repo, r.commit, {**r.files, "README.md": md5_card(md5s)})
    out = tmp_path / "m.toml"
    res = ws("manifest", "create", r.repo, "-o", str(out))
    assert res.code == 0, res
    assert f"warning: {SHARD2}: the cached file (verified at pull) has md5 " \
           f"{hashlib.md5(r.files[SHARD2]).hexdigest()}, but the card says {'f' * 32}" in res.err
    assert any("the published checksum and the uploaded bytes disagree" in n for n in mf.load(out).notes)


def test_card_findings_are_warned_and_written_into_the_notes(ws, hub, seeds, tmp_path):
    r = seeds["granite-3.0-2b-instruct"]
    note = tmp_path / "RELEASE.txt"
    shard = "model-00001-of-00002.safetensors"
    sha = hashlib.sha256(r.files[shard]).hexdigest()
    note.write_text(f"SHA256 ({shard}) = {sha}\nSHA256 (model.gguf) = {'a' * 64}\n"
                    f"md5:\n{'1' * 32}  config.json\n{'2' * 32}  config.json\n")
    out = tmp_path / "g.toml"
    res = ws("manifest", "create", r.repo, "--card", str(note), "-o", str(out))
    assert res.code == 0, res
    assert "model.gguf" in res.err and "not in the repository" in res.err
    assert "config.json: md5" in res.err and "neither imported" in res.err
    m = mf.load(out)
    # the release note's sha256 agrees with the hub's; the publisher's word is the one kept
    assert m.file(shard).digest("sha256").source == "card-file" and m.file(shard).digest("sha256").hex == sha
    assert m.file("config.json").digest("md5") is None
    assert sum("model.gguf" in n for n in m.notes) == 1
    assert ws("pull", r.name, "--manifest", str(out)).code == 0


def test_create_from_a_directory_hashes_every_file_and_verifies(ws, seeds, tmp_path):
    r = seeds["granite-3.0-1b-a400m-instruct"]
    d = write_replica(r, tmp_path / "model")
    made = from_dir(d, "local-granite", algs=("md5", "sha256"), jobs=2)
    f = made.manifest.file("model.safetensors")
    assert f.size == len(r.files["model.safetensors"])
    assert f.digest("md5").hex == hashlib.md5(r.files["model.safetensors"]).hexdigest()
    assert f.digest("sha256").source == "local"
    out = tmp_path / "local.toml"
    assert ws("manifest", "create", "--dir", str(d), "--alg", "md5,sha256", "-o", str(out)).code == 0
    assert ws("verify", "--dir", str(d), "--manifest", str(out), "--full").code == 0
    (d / "config.json").write_text("{}")
    assert ws("verify", "--dir", str(d), "--manifest", str(out), "--full").code == 1


def test_lint_warns_on_what_a_manifest_leaves_unchecked(ws, tmp_path):
    text = ('schema = 1\nname = "x"\nrepo = "o/x"\nrevision = "main"\n[sources]\nhub-lfs = "h"\ncard = "c"\n'
            '[[files]]\npath = "model-00001-of-00002.safetensors"\nsize = 3\n'
            'digests = [{ alg = "sha256", hex = "' + "a" * 64 + '", source = "hub-lfs" }]\n'
            '[[files]]\npath = "model-00002-of-00002.safetensors"\n')
    p = tmp_path / "x.toml"
    p.write_text(text)
    codes = {w.code for w in lint(mf.load(p)).warnings}
    assert codes == {"unpinned", "no-digest", "no-size", "one-source", "no-config", "no-index"}
    assert ws("manifest", "lint", str(p)).code == 0
    res = ws("manifest", "lint", "--strict", "--json", str(p))
    assert res.code == 1 and not json.loads(res.out)["ok"]
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('alg = "sha256"', 'alg = "sha257"'))
    res = ws("manifest", "lint", str(p), str(bad))
    assert res.code == 2 and "sha257" in res.err


def test_shipped_manifests_lint_without_schema_errors(ws):
    from weightsafe import catalog

    paths = sorted(str(p) for p in catalog.packaged_dir().glob("*.toml"))
    res = ws("manifest", "lint", "--json", *paths)
    assert res.code == 0, res
    report = json.loads(res.out)
    assert len(report["manifests"]) == 6 and not report["errors"]


def test_pin_resolves_the_branch_and_fills_sizes_and_hub_digests(ws, hub, seeds, tmp_path, env):
    r = seeds["granite-8b-code-instruct-4k"]
    p = tmp_path / "g.toml"
    shard = "model-00001-of-00004.safetensors"
    p.write_text(f'schema = 1\nname = "g"\nrepo = "{r.repo}"\nrevision = "main"\ncommit = "{r.commit[:7]}"\n'
                 f'[sources]\n[[files]]\npath = "{shard}"\nsize_approx = 1\n[[files]]\npath = "config.json"\n')
    res = ws("manifest", "pin", str(p))
    assert res.code == 0, res
    m = mf.load(p)
    assert m.revision == r.commit and m.file(shard).size == len(r.files[shard])
    assert m.file(shard).digest("sha256").hex == hashlib.sha256(r.files[shard]).hexdigest()
    assert m.file("config.json").digest("git-sha1").source == "hub-git"
    assert ws("manifest", "pin", str(p)).out.strip().endswith("already pinned and complete")
    wrong = p.read_text().replace(hashlib.sha256(r.files[shard]).hexdigest(), "b" * 64).replace(r.commit, "main")
    p.write_text(wrong)
    res = ws("manifest", "pin", str(p))
    assert res.code == 3 and "the hub has" in res.err and p.read_text() == wrong  # not rewritten


def test_pin_past_a_short_commit_the_branch_moved_on_from_says_so(seeds, hub, tmp_path, env):
    r = seeds["octocoder"]
    m = mf.Manifest("o", r.repo, "main", (mf.FileEntry("config.json"),), commit="abcdef0")
    pinned, changes = pin(m, HubSource(hub.url))
    assert pinned.revision == r.commit and pinned.commit is None
    assert any("named commit abcdef0" in n for n in pinned.notes)
    assert changes[:2] == [f"revision main -> {r.commit}", f"commit abcdef0 dropped: main is now {r.commit}"]


def test_bad_create_input_is_one_line_and_exit_2(env, tmp_path):
    for args in (["manifest", "create"], ["manifest", "create", "o/x", "--dir", str(tmp_path)],
                 ["manifest", "create", "--dir", str(tmp_path / "nope")],
                 ["manifest", "create", "--dir", str(tmp_path), "--alg", "crc32"]):
        res = run_ws(*args, env=env)
        assert res.code == 2 and len(res.err.strip().splitlines()) == 1, (args, res)
    res = run_ws("manifest", "create", "nobody/nothing", env=env)
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
    res = run_ws("manifest", "create", "bigcode/octocoder", env=env, extra_env={"HF_HUB_OFFLINE": "1"})
    assert res.code == 3 and "offline" in res.err, res
