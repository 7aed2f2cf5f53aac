"""What the CLI prints with --json for list, show, cache ls and manifest lint/create comes from typed
reports the API returns: a script calling weightsafe.api gets the same fields, in the same order,
without a subprocess. And the cache's layout is spelled in one place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import weightsafe
from weightsafe import api
from weightsafe.records import ModelRecord

PACKAGE = Path(weightsafe.__file__).parent


def _tiny(tmp_path: Path) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "tiny"}')
    return d


def test_no_module_but_cache_py_joins_paths_under_the_cache_root():
    joined = [f"{p.relative_to(PACKAGE)}:{n}" for p in PACKAGE.rglob("*.py") if p.name != "cache.py" or p.parent != PACKAGE
              for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"cache\.root\s*/", line)]
    assert not joined, joined


def test_list_is_a_model_list_with_the_cli_fields_in_order(tmp_path):
    api.manifest_create(directory=_tiny(tmp_path), name="tiny", output=tmp_path / "m" / "tiny.toml")
    settings = weightsafe.Settings.from_env({"WEIGHTSAFE_MANIFEST_PATH": str(tmp_path / "m"),
                                             "WEIGHTSAFE_CACHE": str(tmp_path / "cache")})
    out = api.models(settings=settings).to_dict()
    assert list(out) == ["command", "ok", "models"] and out["command"] == "list"
    row = out["models"][0]
    assert list(row) == ["name", "repo", "revision", "files", "bytes", "cached", "manifest"]
    assert (row["name"], row["files"], row["bytes"], row["cached"]) == ("tiny", 1, 22, False)


def test_show_is_a_manifest_report(tmp_path):
    api.manifest_create(directory=_tiny(tmp_path), name="tiny", output=tmp_path / "tiny.toml")
    out = api.show("tiny", manifest=tmp_path / "tiny.toml").to_dict()
    assert list(out) == ["command", "ok", "name", "repo", "revision", "pinned", "commit", "manifest", "sources",
                         "notes", "files", "unknown_digests", "unknown_sizes"]
    assert out["pinned"] is False and out["unknown_digests"] == [] and out["unknown_sizes"] == []
    json.dumps(out)  # plain JSON types only


def test_lint_reports_schema_errors_and_warnings_without_raising(tmp_path):
    api.manifest_create(directory=_tiny(tmp_path), name="tiny", output=tmp_path / "tiny.toml")
    (tmp_path / "bad.toml").write_text('name = "bad"\n')
    run = api.lint([tmp_path / "tiny.toml"], strict=True)
    assert (run.ok, run.exit_code) == (False, 1)  # warnings fail only a strict lint
    assert api.lint([tmp_path / "tiny.toml"]).exit_code == 0
    both = api.lint([tmp_path / "tiny.toml", tmp_path / "bad.toml"]).to_dict()
    assert list(both) == ["command", "ok", "strict", "manifests", "errors"]
    assert both["errors"] == [{"manifest": str(tmp_path / "bad.toml"), "field": "schema",
                               "reason": both["errors"][0]["reason"]}]


def test_manifest_create_reports_what_it_wrote(tmp_path):
    made = api.manifest_create(directory=_tiny(tmp_path), name="tiny", output=tmp_path / "tiny.toml")
    out = made.to_dict()
    assert list(out) == ["command", "ok", "output", "name", "repo", "revision", "files", "findings", "manifest"]
    assert out["output"] == str(tmp_path / "tiny.toml") and out["manifest"] == (tmp_path / "tiny.toml").read_text()


def test_cache_ls_on_an_empty_cache(tmp_path):
    listing = api.cache_ls(cache_dir=tmp_path / "cache")
    assert listing.to_dict() == {"command": "cache ls", "ok": True, "cache": str(tmp_path / "cache"), "models": []}


def test_a_model_record_reads_wrong_types_as_absent():
    r = ModelRecord.from_json({"name": ["x"], "repo": "org/x", "commit": None, "pulled": "config.json",
                               "files": {"a": {"size": "1"}}})
    assert (r.name, r.repo, r.commit, r.pulled, r.files) == (None, "org/x", None, None, {})
    assert ModelRecord.from_json([]) == ModelRecord()
