"""OpenSSF model signatures (OMS): trust a model because its publisher's key signed its files.

An OMS signature is a sigstore bundle whose DSSE envelope carries an in-toto statement listing
every file's digest. The ``model-signing`` library checks the envelope's signature (key method
offline, or a certificate chain); the signed digests then become an ordinary manifest that
weightsafe's own parallel verifier checks against disk, so a signed model is judged the same
way as any other: missing files, changed bytes, and files nobody signed each get a verdict.
The library is an optional extra: ``pip install 'weightsafe[sign]'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from .errors import IntegrityError, UsageError
from .manifest import Digest, FileEntry, Manifest, check_relpath
from .verify import UNEXPECTED, VerifyReport, verify_directory

SOURCE = "oms-signature"
#: OMS hash names weightsafe's hasher computes; blake2b/blake3 and sharded signatures are not.
SUPPORTED = {"sha256": "sha256"}


class SignatureInvalidError(IntegrityError):
    """The signature does not verify: the bundle or the statement it signs was altered (exit 1)."""


class SignatureKeyError(IntegrityError):
    """The signature was made with another key than the one given (exit 1)."""


@dataclass(frozen=True)
class SignedModel:
    """What a verified signature vouches for: a digest per file, and paths it left out on purpose."""

    signature: str
    signer: str
    model_name: str
    digests: dict[str, Digest]
    ignored: tuple[str, ...]

    def manifest(self, name: str = "signature") -> Manifest:
        files = tuple(FileEntry(p, None, (d,)) for p, d in sorted(self.digests.items()))
        return Manifest(name=name, repo=f"signed/{name}", revision="signed", files=files,
                        sources={SOURCE: self.describe()}, origin=self.signature)

    def describe(self) -> str:
        return f"OpenSSF model signature {Path(self.signature).name}, verified with {self.signer}"


def _library():
    try:
        from model_signing._signing import sign_certificate, sign_ec_key, sign_sigstore_pb
    except ImportError:
        raise UsageError("signature checks need the model-signing library: pip install 'weightsafe[sign]'") from None
    return sign_ec_key, sign_certificate, sign_sigstore_pb


def read_signed(signature: str | Path, public_key: str | Path | None = None,
                certificate_chain: Sequence[str | Path] = ()) -> SignedModel:
    """Verify ``signature`` with a public key (or a certificate chain) and return what it signs."""
    sign_ec_key, sign_certificate, sign_sigstore_pb = _library()
    sig = Path(signature)
    if public_key is None and not certificate_chain:
        raise UsageError("--signature needs --public-key KEY (or --certificate-chain CERT)")
    try:
        bundle = sign_sigstore_pb.Signature.read(sig)
    except OSError as e:
        raise UsageError(f"{sig}: {e.strerror or e}") from None
    except Exception as e:
        raise SignatureInvalidError(f"{sig}: not a readable model signature bundle ({_why(e)}); "
                                    f"it may have been altered") from None
    try:
        if public_key is not None:
            verifier, signer = sign_ec_key.Verifier(Path(public_key)), str(public_key)
        else:
            verifier = sign_certificate.Verifier([Path(c) for c in certificate_chain])
            signer = "certificate chain " + ", ".join(str(c) for c in certificate_chain)
    except OSError as e:
        raise UsageError(f"{public_key or certificate_chain[0]}: {e.strerror or e}") from None
    except Exception as e:
        raise UsageError(f"{public_key or ', '.join(map(str, certificate_chain))}: not a usable "
                         f"public key or certificate ({_why(e)})") from None
    try:
        signed = verifier.verify(bundle)
    except ValueError as e:
        if "Key mismatch" in str(e):
            raise SignatureKeyError(f"{sig}: signed with a different key than {public_key}: the model is not "
                                    f"vouched for by that key") from None
        raise SignatureInvalidError(f"{sig}: the signature does not verify ({_why(e)})") from None
    except Exception as e:
        if type(e).__name__ == "X509StoreContextError":  # pyOpenSSL: the chain does not lead to ours
            raise SignatureKeyError(f"{sig}: signed with a certificate that {signer} does not vouch for "
                                    f"({_why(e)})") from None
        raise SignatureInvalidError(f"{sig}: the signature does not verify with {signer}: the bundle or the "
                                    f"statement it signs was altered ({_why(e)})") from None
    return _signed_model(signed, sig, signer)


def _signed_model(signed, sig: Path, signer: str) -> SignedModel:
    kind = signed.serialization_type
    if kind.get("method") != "files":
        raise UsageError(f"{sig}: signs files in {kind.get('method')!r} serialization; weightsafe checks "
                         f"per-file signatures only (re-sign with the default files method)")
    digests = {}
    for rd in signed.resource_descriptors():
        alg = SUPPORTED.get(rd.digest.algorithm)
        if alg is None:
            raise UsageError(f"{sig}: signs {rd.digest.algorithm} digests; weightsafe checks "
                             f"{', '.join(SUPPORTED)} only")
        try:
            path = check_relpath(str(rd.identifier))
        except ValueError as why:
            raise SignatureInvalidError(f"{sig}: signs an unsafe path {rd.identifier!r}: {why}") from None
        digests[path] = Digest(alg, rd.digest.digest_hex, SOURCE)
    return SignedModel(str(sig), signer, signed.model_name, digests,
                       tuple(str(p) for p in kind.get("ignore_paths", ())))


def _ignored(path: str, ignored: tuple[str, ...], own: set[str]) -> bool:
    if path in own:
        return True
    parts = PurePosixPath(path).parts
    return any(path == i or parts[:len(PurePosixPath(i).parts)] == PurePosixPath(i).parts for i in ignored)


def verify_signed_directory(directory: str | Path, signature: str | Path, public_key: str | Path | None = None,
                            certificate_chain: Sequence[str | Path] = (), jobs: int | None = None) -> VerifyReport:
    """Check ``directory`` against a signature: every signed file present with its signed digest,
    and no file present that the signature does not cover (its own ignore paths and the
    signature file itself excepted). The report fails on any of these."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    signed = read_signed(signature, public_key, certificate_chain)
    own = set()
    try:
        own.add(os.path.relpath(os.path.realpath(signature), os.path.realpath(directory)).replace(os.sep, "/"))
    except ValueError:
        pass
    report = verify_directory(signed.manifest(), directory, None, full=True, jobs=jobs, strict=True)
    report.verdicts = [v for v in report.verdicts
                       if not (v.status == UNEXPECTED and _ignored(v.path, signed.ignored, own))]
    for v in report.verdicts:
        if v.status == UNEXPECTED:
            v.message = f"{v.path}: present but not signed"
        elif v.status == "missing":
            v.message = f"{v.path}: signed but missing"
    report.name = f"signature {Path(signature).name}"
    report.notes.append(f"signature verified: {signed.describe()}; {len(signed.digests)} file(s) signed")
    return report


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]
