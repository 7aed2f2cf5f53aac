"""`weightsafe verify`: parallel hashing with one precise verdict per file, for cache or any directory."""

from __future__ import annotations

import json

import pytest

from tests.replicas import replica_manifest, write_replica


@pytest.fixture
def volume(seeds, tmp_path):
    """A pre-baked volume: the codefuse replica's files in a plain directory, and its manifest."""
    r = seeds["codefuse-34b"]
    d = write_replica(r, tmp_path / "volume")
    m = tmp_path / "codefuse-34b.toml"
    m.write_text(replica_manifest(r))
    return d, m


def test_a_good_directory_verifies_and_extra_files_are_only_a_warning(ws, volume):
    d, m = volume
    res = ws("verify", "--dir", str(d), "--manifest", str(m))
    assert res.code == 0, res
    assert "warning: README.md: not in the manifest" in res.err
    assert ws("verify", "--dir", str(d), "--manifest", str(m), "--strict").code == 1


def test_each_kind_of_damage_gets_its_own_verdict(ws, volume):
    d, m = volume
    (d / "pytorch_model-00002-of-00007.bin").unlink()
    with open(d / "pytorch_model-00003-of-00007.bin", "ab") as fh:
        fh.write(b"x")
    data = bytearray((d / "pytorch_model-00004-of-00007.bin").read_bytes())
    data[-1] ^= 0x01
    (d / "pytorch_model-00004-of-00007.bin").write_bytes(bytes(data))
    (d / "config.json").write_text("{}")
    res = ws("verify", "--dir", str(d), "--manifest", str(m), "--json")
    assert res.code == 1
    report = json.loads(res.out)
    status = {f["path"]: f["status"] for f in report["files"]}
    assert status["pytorch_model-00002-of-00007.bin"] == "missing"
    assert status["pytorch_model-00003-of-00007.bin"] == "wrong_size"
    assert status["pytorch_model-00004-of-00007.bin"] == "mismatch"
    assert status["config.json"] == "wrong_size"
    assert status["pytorch_model-00001-of-00007.bin"] == "ok"
    assert status["README.md"] == "unexpected"
    bad = next(f for f in report["files"] if f["path"] == "pytorch_model-00004-of-00007.bin")
    assert {(c["alg"], c["source"], c["ok"]) for c in bad["checks"]} == {("md5", "card", False),
                                                                         ("sha256", "hub-lfs", False)}


def test_after_a_full_check_the_fingerprint_is_used_and_catches_changes(ws, volume):
    d, m = volume
    first = json.loads(ws("verify", "--dir", str(d), "--manifest", str(m), "--json").out)
    assert {f["method"] for f in first["files"] if f["status"] == "ok"} == {"full"}
    second = json.loads(ws("verify", "--dir", str(d), "--manifest", str(m), "--json").out)
    assert {f["method"] for f in second["files"] if f["status"] == "ok"} == {"fingerprint"}
    data = bytearray((d / "tokenizer.model").read_bytes())
    data[0] ^= 0xFF
    (d / "tokenizer.model").write_bytes(bytes(data))
    res = ws("verify", "--dir", str(d), "--manifest", str(m))
    assert res.code == 1 and "tokenizer.model: changed since it was verified" in res.err
    full = ws("verify", "--dir", str(d), "--manifest", str(m), "--full")
    assert full.code == 1 and "tokenizer.model: sha256 from hub-lfs differs" in full.err


def test_a_file_with_no_known_digest_cannot_pass(ws, volume, tmp_path):
    d, _ = volume
    m = tmp_path / "bare.toml"
    m.write_text('schema = 1\nname = "bare"\nrepo = "org/bare"\nrevision = "main"\n'
                 '[[files]]\npath = "config.json"\n')
    res = ws("verify", "--dir", str(d), "--manifest", str(m))
    assert res.code == 1 and "config.json: no digest is known" in res.err


def test_verify_of_a_model_not_in_the_cache_says_how_to_get_it(ws):
    res = ws("verify", "codefuse-34b")
    assert res.code == 2 and "weightsafe pull codefuse-34b" in res.err


def test_records_keep_their_json_form_and_one_that_does_not_parse_is_no_record(tmp_path):
    import json

    from weightsafe.records import FileRecord, Records, Stat

    records = Records(tmp_path / "records.json")
    good = FileRecord(Stat(5, 6, 7), "ab", {"sha256": "cd"}, {"sha256": "hub-lfs"}, 1.5)
    records.update({"a.safetensors": good, "b.safetensors": good})
    raw = json.loads(records.path.read_text())
    assert raw["files"]["a.safetensors"] == {"size": 5, "mtime_ns": 6, "ino": 7, "xxh3-128": "ab",
                                             "digests": {"sha256": "cd"}, "sources": {"sha256": "hub-lfs"},
                                             "verified_at": 1.5}  # the format earlier caches have
    raw["files"]["b.safetensors"]["size"] = "5"
    records.path.write_text(json.dumps(raw))
    assert records.files() == {"a.safetensors": good}
    assert good.matches(Stat(5, 6, 7)) and not good.matches(Stat(5, 6, 8))
