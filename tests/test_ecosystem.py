"""The verified model where people load it: the Hugging Face cache (read back by huggingface_hub and
transformers themselves, offline), deploy directories, and the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import weightsafe
from tests.conftest import model_dir, run_ws

REPO_SEED = "granite-3.0-2b-instruct"


def hf_python(code: str, env: dict, offline: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` with huggingface_hub / transformers in a fresh process (they read HF_* at import)."""
    full = {**env, "HF_HUB_OFFLINE": "1" if offline else "0", "TRANSFORMERS_OFFLINE": "1" if offline else "0"}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def hub_cache(env) -> Path:
    return Path(env["HF_HOME"]) / "hub"


def test_pull_into_the_hf_cache_is_found_by_huggingface_hub_offline(env, seeds, hub):
    r = seeds[REPO_SEED]
    path = weightsafe.pull(r.repo, hf_cache=True)
    root = hub_cache(env) / f"models--{r.repo.replace('/', '--')}"
    assert path == root / "snapshots" / r.commit
    assert (root / "refs" / "main").read_text() == r.commit
    for rel, data in r.files.items():
        link = path / rel
        assert link.is_symlink() and not os.path.isabs(os.readlink(link)), rel
        assert link.read_bytes() == data
    hub.stop()  # from here on nothing may need the network
    code = (f"from huggingface_hub import snapshot_download, hf_hub_download\n"
            f"print(snapshot_download({r.repo!r}, revision={r.commit!r}, local_files_only=True))\n"
            f"print(hf_hub_download({r.repo!r}, 'config.json', local_files_only=True))\n")
    proc = hf_python(code, env)
    assert proc.returncode == 0, proc.stderr
    snap, config = proc.stdout.split()
    assert Path(snap) == path and Path(config) == path / "config.json"


def test_transformers_loads_the_verified_model_by_repo_id_offline(env, seeds, hub):
    pytest.importorskip("transformers")
    r = seeds[REPO_SEED]
    weightsafe.pull(r.repo, hf_cache=True)
    hub.stop()
    code = (f"from transformers import AutoModelForCausalLM\n"
            f"m = AutoModelForCausalLM.from_pretrained({r.repo!r})\n"
            f"print(sum(p.numel() for p in m.parameters()))\n")
    proc = hf_python(code, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0


def test_hf_cache_blobs_share_the_bytes_of_weightsafes_cache(env, seeds, cache_dir, ws):
    r = seeds["codefuse-34b"]
    res = ws("pull", "codefuse-34b", "--hf-cache", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    methods = {p["method"] for p in report["placements"]}
    assert methods <= {"reflink", "hardlink"}, methods  # same file system: no byte stored twice
    assert any("placed" in n and "no extra disk space" in n for n in report["notes"])
    snapshot = hub_cache(env) / f"models--{r.repo.replace('/', '--')}" / "snapshots" / r.commit
    ours = model_dir(cache_dir, r) / "pytorch_model-00001-of-00007.bin"
    theirs = (snapshot / "pytorch_model-00001-of-00007.bin").resolve()
    if "hardlink" in methods:
        assert os.path.samefile(ours, theirs)
    import hashlib
    assert theirs.name == hashlib.sha256(r.files["pytorch_model-00001-of-00007.bin"]).hexdigest()
    assert (snapshot / "config.json").resolve().name == _git_sha1(r.files["config.json"])
    # a manifest pinned to a commit also makes the repo id loadable offline, without clobbering a ref
    assert (snapshot.parent.parent / "refs" / "main").read_text() == r.commit


def _git_sha1(data: bytes) -> str:
    import hashlib
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_nothing_unverified_reaches_the_hf_cache(env, seeds, hub, ws):
    r = seeds["codefuse-34b"]
    hub.state.fault("corrupt", host="cdn", path="pytorch_model-00003-of-00007.bin", times=None)
    res = ws("pull", "codefuse-34b", "--hf-cache")
    assert res.code == 1, res
    assert not (hub_cache(env) / f"models--{r.repo.replace('/', '--')}").exists()


def test_verify_checks_a_snapshot_that_huggingface_hub_downloaded_itself(env, seeds, hub, ws):
    r = seeds[REPO_SEED]
    proc = hf_python(f"from huggingface_hub import snapshot_download\n"
                     f"print(snapshot_download({r.repo!r}))\n", env, offline=False)
    assert proc.returncode == 0, proc.stderr
    hub.stop()
    res = ws("verify", r.repo, "--hf-cache", "--full", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert {f["status"] for f in report["files"]} == {"ok"} and len(report["files"]) == len(r.files)
    assert any("blobs are named by" in n for n in report["notes"])
    # flip one byte of one blob: exit 1, naming the file
    blob = (Path(proc.stdout.strip()) / "model-00001-of-00002.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    res = ws("verify", r.repo, "--hf-cache", "--full")
    assert res.code == 1 and "model-00001-of-00002.safetensors: sha256 from hf-blob differs" in res.err, res
    # the manifest name checks the same snapshot against the manifest's own digests
    res = ws("verify", REPO_SEED, "--hf-cache", "--full")
    assert res.code == 1 and "sha256 from hub-lfs differs" in res.err, res


def test_local_dir_holds_only_verified_files_and_reverifies_by_itself(env, seeds, tmp_path, ws):
    r = seeds["codefuse-34b"]
    deploy = tmp_path / "deploy"
    res = ws("pull", "codefuse-34b", "--local-dir", str(deploy))
    assert res.code == 0, res
    assert f"-> {deploy}" in res.out
    visible = sorted(p.relative_to(deploy).as_posix() for p in deploy.rglob("*")
                     if p.is_file() and ".cache" not in p.parts)
    manifest_paths = sorted(p for p in r.files if p.endswith((".bin", ".json", ".model")))
    assert visible == manifest_paths  # no .part, no temp file beside the weights
    assert not list((deploy / ".cache" / "weightsafe").rglob("*.tmp"))
    for p in manifest_paths:
        assert (deploy / p).read_bytes() == r.files[p]
    ok = json.loads(ws("verify", "--local-dir", str(deploy), "--json").out)
    assert ok["ok"] and {f["method"] for f in ok["files"]} == {"fingerprint"}  # records came along
    assert ws("check", "--local-dir", str(deploy), "--structure-only").code == 0
    target = deploy / "pytorch_model-00005-of-00007.bin"
    data = bytearray(target.read_bytes())
    data[7] ^= 0x40
    target.unlink()  # a new file (not a write through the hard link into the cache)
    target.write_bytes(bytes(data))
    res = ws("verify", "--local-dir", str(deploy), "--full")
    assert res.code == 1 and "pytorch_model-00005-of-00007.bin" in res.err
    assert ws("verify", "codefuse-34b").code == 0  # the cache's copy is untouched
    assert ws("pull", "codefuse-34b", "--local-dir", str(deploy)).code == 0  # and repairs the deploy dir
    assert target.read_bytes() == r.files["pytorch_model-00005-of-00007.bin"]


def test_a_pull_without_a_local_dir_manifest_cannot_be_verified_blind(ws, tmp_path):
    (tmp_path / "never-pulled").mkdir()
    res = ws("verify", "--local-dir", str(tmp_path / "never-pulled"))
    assert res.code == 2 and "never pulled into it" in res.err


# ---------------------------------------------------------------- the Python API

def test_the_api_returns_values_and_prints_nothing(env, seeds, capsys):
    r = seeds[REPO_SEED]
    path = weightsafe.pull(REPO_SEED)
    assert path.is_dir() and (path / "config.json").read_bytes() == r.files["config.json"]
    report = weightsafe.verify(REPO_SEED, full=True)
    assert report.ok and all(v.status == "ok" for v in report.verdicts)
    assert weightsafe.check(REPO_SEED, structure_only=True).ok
    assert weightsafe.path(REPO_SEED) == path
    plan = weightsafe.plan(REPO_SEED)
    assert plan.bytes_to_fetch == 0 and {f.action for f in plan.files} == {"cached"}
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_api_failures_are_typed_errors_with_exit_codes(env, seeds, hub, monkeypatch, tmp_path):
    hub.state.fault("corrupt", host="cdn", path="model-00002-of-00002.safetensors", times=None)
    with pytest.raises(weightsafe.PullFailed) as failed:
        weightsafe.pull(REPO_SEED)
    assert failed.value.exit_code == 1 and "model-00002-of-00002.safetensors" in str(failed.value)
    assert [f.path for f in failed.value.report.failures] == ["model-00002-of-00002.safetensors"]
    with pytest.raises(weightsafe.UsageError):
        weightsafe.pull("no-such-model")
    with pytest.raises(weightsafe.HubError) as offline:
        weightsafe.pull("codefuse-34b", offline=True)
    assert offline.value.exit_code == 3
    with pytest.raises(weightsafe.NotCachedError) as missing:
        weightsafe.path("codefuse-34b")
    assert missing.value.exit_code == 1
    bad = weightsafe.verify(REPO_SEED)  # model-00002 never arrived: a report, not an exception
    assert not bad.ok
    with pytest.raises(weightsafe.IntegrityError, match="model-00002-of-00002.safetensors: missing"):
        bad.raise_for_status()
    monkeypatch.setenv("WEIGHTSAFE_RETRIES", "abc")
    with pytest.raises(weightsafe.UsageError, match="WEIGHTSAFE_RETRIES='abc'"):
        weightsafe.pull(REPO_SEED)


CLI_DIR = Path(weightsafe.__file__).parent / "cli"
#: What a CLI module may import from the package: the API, and the values it prints or maps.
CLI_MAY_IMPORT = {"api", "errors", "settings", "progress", "_version", "text", "cli"}  # the api and values


def _package_imports(path: Path) -> set[str]:
    """The top-level weightsafe modules ``path`` (a module of weightsafe.cli) imports, anywhere in it."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import / from . import x
            found |= {"cli"}
        elif isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..x import y / from .. import x
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("weightsafe"):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("weightsafe.")}
    return found


def test_the_cli_is_a_thin_layer_over_the_api():
    modules = sorted(CLI_DIR.glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "app", "options", "models", "cache", "manifest", "mirror",
                                         "render"}
    for path in modules:
        source = path.read_text()
        for heavy in ("Puller(", "verify_directory(", "HubSource(", "open_source(", "load_check(", "Context.make(", "json.dumps({"):
            assert heavy not in source, f"cli/{path.name}: {heavy}"
        reaching = _package_imports(path) - CLI_MAY_IMPORT
        assert not reaching, f"cli/{path.name} imports {sorted(reaching)}: it should ask weightsafe.api"
    assert {"pull", "verify", "check", "path", "WeightsafeError"} <= set(weightsafe.__all__)
    assert (Path(weightsafe.__file__).parent / "py.typed").exists()


def test_the_thin_layer_check_sees_a_use_case_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from .. import housekeeping\n    from ..catalog import split_spec\n"
                   "    import weightsafe.lint\n    from weightsafe.signing import read_signed\n")
    assert _package_imports(bad) - CLI_MAY_IMPORT == {"housekeeping", "catalog", "lint", "signing"}


@pytest.mark.parametrize("args", [["--help"], ["list"], ["verify", "--help"], ["cache", "ls"]])
def test_start_up_does_not_import_the_http_or_s3_stack(args, tmp_path):
    """`weightsafe list` and friends answer in a blink: requests (~0.3 s) and boto3 load only for
    commands that talk to a hub or a bucket."""
    env = {**os.environ, "WEIGHTSAFE_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "weightsafe", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "weightsafe.cli" in imported  # the probe sees the package's own imports
    assert not {m for m in imported if m.split(".")[0] in ("requests", "boto3", "botocore", "urllib3", "torch")}


def test_bad_settings_are_usage_errors_naming_the_variable(env):
    for var, value in (("WEIGHTSAFE_RETRIES", "abc"), ("WEIGHTSAFE_READ_TIMEOUT", "-1"),
                       ("HF_HUB_OFFLINE", "maybe"), ("HF_ENDPOINT", "ftp://x")):
        res = run_ws("pull", "codefuse-34b", env=env, extra_env={var: value})
        assert res.code == 2 and var in res.err and res.err.count("\n") == 1, (var, res)


def test_the_token_file_hf_auth_login_writes_is_used(env, seeds, hub, tmp_path):
    from tests.conftest import TOKEN
    first, second = seeds["granite-8b-code-instruct-4k"], seeds["granite-3.0-1b-a400m-instruct"]
    for r in (first, second):
        hub.state.repos[r.repo].gated = True
    assert run_ws("pull", first.name, env=env).code == 3  # no token anywhere: refused
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    res = run_ws("pull", first.name, env=env, extra_env={"HF_TOKEN_PATH": str(token_file)})
    assert res.code == 0, res
    default = Path(env["HF_HOME"]) / "token"  # where `hf auth login` writes when HF_TOKEN_PATH is unset
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(TOKEN)
    assert run_ws("pull", second.name, env=env).code == 0


def test_a_deploy_dir_on_another_file_system_gets_checked_copies(env, seeds, ws, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    other = tmp_path / "other-fs"
    other.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(other)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        res = ws("pull", REPO_SEED, "--local-dir", str(other / "deploy"), "--json")
        assert res.code == 0, res
        report = json.loads(res.out)
        assert {p["method"] for p in report["placements"]} == {"copy"}
        assert any("copies take extra disk space" in n for n in report["notes"])
        assert ws("verify", "--local-dir", str(other / "deploy"), "--full").code == 0
    finally:
        subprocess.run(["umount", str(other)], capture_output=True)


def test_check_loads_the_hf_cache_snapshot_through_its_symlinks(env, seeds, ws):
    r = seeds[REPO_SEED]
    assert ws("pull", r.repo, "--hf-cache").code == 0
    res = ws("check", r.repo, "--hf-cache", "--device", "cpu", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["ok"] and report["directory"].endswith(f"snapshots/{r.commit}")
    assert report["load"]["tensors"] == report["tensors"] > 0
    assert ws("path", r.repo, "--hf-cache").out.strip() == report["directory"]


def test_the_api_names_stay_functions_after_use(env, seeds):
    """A lazily imported submodule must never shadow a public function of the package."""
    weightsafe.pull(REPO_SEED)
    weightsafe.plan(REPO_SEED)
    weightsafe.verify(REPO_SEED)
    for name in ("pull", "plan", "verify", "check", "path"):
        assert callable(getattr(weightsafe, name)), name
