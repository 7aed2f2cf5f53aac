"""OpenSSF model signatures: a key pair and a signature made here with model-signing itself,
offline; weightsafe verifies the signature, then every signed digest against disk."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

pytest.importorskip("model_signing", reason="the 'sign' extra (model-signing) is not installed")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from weightsafe import manifest as mf  # noqa: E402
from weightsafe.signing import SignatureInvalidError, SignatureKeyError, verify_signed_directory  # noqa: E402
from tests.conftest import run_ws  # noqa: E402
from tests.replicas import write_replica  # noqa: E402

SHARD = "model-00001-of-00002.safetensors"


def keypair(d, name):
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = d / f"{name}.pem", d / f"{name}.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture
def signed(seeds, tmp_path):
    """A model directory (the granite-2b replica), its signature and the right and a wrong key."""
    import model_signing

    r = seeds["granite-3.0-2b-instruct"]
    model = write_replica(r, tmp_path / "model")
    priv, pub = keypair(tmp_path, "publisher")
    _, other = keypair(tmp_path, "someone-else")
    sig = tmp_path / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(model, sig)
    return r, model, sig, pub, other


def test_a_signed_model_verifies_offline(signed):
    r, model, sig, pub, _ = signed
    report = verify_signed_directory(model, sig, pub, jobs=2)
    assert report.ok, [v.message for v in report.verdicts]
    assert {v.path for v in report.verdicts} == set(r.files) - {".gitattributes"}  # signer's own ignore list


def test_tampered_bytes_name_the_file_and_the_signature_as_source(signed):
    _, model, sig, pub, _ = signed
    data = bytearray((model / SHARD).read_bytes())
    data[-1] ^= 1
    (model / SHARD).write_bytes(bytes(data))
    report = verify_signed_directory(model, sig, pub)
    bad = [v for v in report.failures]
    assert [v.path for v in bad] == [SHARD]
    assert "sha256 from oms-signature differs" in bad[0].message


def test_signed_but_missing_and_present_but_unsigned_both_fail(signed):
    _, model, sig, pub, _ = signed
    (model / "config.json").unlink()
    (model / "run_me.py").write_text("import os\n")
    report = verify_signed_directory(model, sig, pub)
    assert {v.path: v.message for v in report.failures} == {
        "config.json": "config.json: signed but missing", "run_me.py": "run_me.py: present but not signed"}


def test_a_wrong_key_and_a_tampered_signature_are_distinct_errors(signed, tmp_path):
    _, model, sig, pub, other = signed
    with pytest.raises(SignatureKeyError, match="signed with a different key"):
        verify_signed_directory(model, sig, other)
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64  # claim other bytes
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.sig"
    forged.write_text(json.dumps(bundle))
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        verify_signed_directory(model, forged, pub)


def test_cli_exit_codes_are_one_line_each(signed, env, ws, tmp_path):
    """In a real process for the wrong key; in-process (where a traceback would raise) for the rest."""
    _, model, sig, pub, other = signed
    ok = ws("verify", "--dir", str(model), "--signature", str(sig), "--public-key", str(pub))
    assert ok.code == 0 and "signature verified" in ok.out, ok
    wrong = run_ws("verify", "--dir", str(model), "--signature", str(sig), "--public-key", str(other), env=env)
    assert wrong.code == 1 and wrong.err.strip().count("\n") == 0 and "different key" in wrong.err
    garbage = tmp_path / "garbage.sig"
    garbage.write_text("{not json")
    res = ws("verify", "--dir", str(model), "--signature", str(garbage), "--public-key", str(pub))
    assert res.code == 1 and res.err.strip().count("\n") == 0 and "not a readable model signature" in res.err
    res = ws("verify", "--dir", str(model), "--signature", str(sig))
    assert res.code == 2 and "--public-key" in res.err
    res = ws("verify", "--dir", str(model), "--signature", str(sig), "--public-key", str(sig))
    assert res.code == 2 and "not a usable public key" in res.err
    (model / SHARD).write_bytes(b"x" + (model / SHARD).read_bytes()[1:])
    res = ws("verify", "--dir", str(model), "--signature", str(sig), "--public-key", str(pub), "--json")
    assert res.code == 1 and not json.loads(res.out)["signature"]["ok"]


def test_pull_and_verify_of_a_cached_model_check_the_signature(signed, ws, cache_dir):
    r, _, sig, pub, other = signed
    res = ws("pull", r.name, "--signature", str(sig), "--public-key", str(pub))
    assert res.code == 1 and "README.md: signed but missing" in res.out + res.err  # the manifest omits it
    res = ws("pull", r.repo, "--signature", str(sig), "--public-key", str(pub))  # every file of the repo
    assert res.code == 0, res
    assert ws("verify", r.repo, "--signature", str(sig), "--public-key", str(pub)).code == 0
    res = ws("verify", r.repo, "--signature", str(sig), "--public-key", str(other))
    assert res.code == 1 and "different key" in res.err


def test_manifest_create_imports_signed_digests(signed, ws, tmp_path):
    r, model, sig, pub, _ = signed
    out = tmp_path / "signed.toml"
    res = ws("manifest", "create", r.repo, "--signature", str(sig), "--public-key", str(pub), "-o", str(out))
    assert res.code == 0, res
    m = mf.load(out)
    assert m.file(SHARD).digest("sha256").source == "oms-signature"
    assert m.file("config.json").digest("sha256").source == "oms-signature"
    assert m.file("config.json").digest("git-sha1").source == "hub-git"
    assert ws("pull", r.name, "--manifest", str(out)).code == 0
    local = tmp_path / "local.toml"
    shutil.rmtree(model / ".cache", ignore_errors=True)
    assert ws("manifest", "create", "--dir", str(model), "--signature", str(sig), "--public-key", str(pub),
              "-o", str(local)).code == 0
    assert mf.load(local).file(SHARD).digest("sha256").source == "oms-signature"


def certificate(d, name, issuer_key=None, issuer_name=None, ca=False):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                         crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
            .sign(issuer_key or key, hashes.SHA256()))
    (d / f"{name}.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, subject, d / f"{name}.crt", d / f"{name}.pem"


def test_the_certificate_method_verifies_against_the_given_chain_only(signed, tmp_path, env):
    import model_signing

    _, model, _, _, _ = signed
    ca_key, ca_name, ca_crt, _ = certificate(tmp_path, "publisher-ca", ca=True)
    _, _, leaf_crt, leaf_key = certificate(tmp_path, "release-signer", ca_key, ca_name)
    _, _, other_ca, _ = certificate(tmp_path, "other-ca", ca=True)
    sig = tmp_path / "cert.sig"
    model_signing.signing.Config().use_certificate_signer(
        private_key=leaf_key, signing_certificate=leaf_crt, certificate_chain=[ca_crt]).sign(model, sig)
    assert verify_signed_directory(model, sig, certificate_chain=[ca_crt]).ok
    with pytest.raises(SignatureKeyError, match="does not vouch for"):
        verify_signed_directory(model, sig, certificate_chain=[other_ca])
    res = run_ws("verify", "--dir", str(model), "--signature", str(sig), "--certificate-chain", str(other_ca),
                 env=env)
    assert res.code == 1 and res.err.strip().count("\n") == 0, res


def test_a_signature_guards_the_hf_cache_and_a_deploy_dir_too(signed, ws, env, tmp_path):
    r, _, sig, pub, other = signed
    deploy = tmp_path / "deploy"
    refused = ws("pull", r.repo, "--hf-cache", "--local-dir", str(deploy), "--signature", str(sig),
                 "--public-key", str(other))
    assert refused.code == 1 and not deploy.exists()  # nothing placed where a loader looks
    res = ws("pull", r.repo, "--hf-cache", "--local-dir", str(deploy), "--signature", str(sig), "--public-key", str(pub))
    assert res.code == 0, res
    for where in (["--local-dir", str(deploy)], [r.repo, "--hf-cache"]):
        ok = ws("verify", *where, "--full", "--signature", str(sig), "--public-key", str(pub), "--json")
        assert ok.code == 0 and json.loads(ok.out)["signature"]["ok"], (where, ok)
    target = deploy / SHARD
    data = bytearray(target.read_bytes())
    data[3] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    bad = ws("verify", "--local-dir", str(deploy), "--signature", str(sig), "--public-key", str(pub))
    assert bad.code == 1 and SHARD in bad.err


def test_the_api_names_the_file_a_signature_refuses(signed, env):
    import weightsafe

    r, _, sig, pub, _ = signed
    with pytest.raises(weightsafe.PullFailed) as refused:  # the manifest omits README.md; the signature covers it
        weightsafe.pull(r.name, signature=sig, public_key=pub)
    assert refused.value.exit_code == 1 and "README.md: signed but missing" in str(refused.value)
