"""The release's signer may not sign its validation (unless told so): the identities compared are those a
certificate names — for a GitHub Actions token the workflow URI Fulcio puts in the SAN, not the ``sub`` claim
sigstore-python calls its identity (review of issue 28)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from uc_attest.evidence.packing import release_signers
from uc_attest.signing.attest import GITHUB_ISSUER, token_identities

WORKFLOW = "bank/models/.github/workflows/release.yml@refs/tags/v1"


def test_a_github_token_names_the_workflow_uri_of_its_certificate() -> None:
    token = SimpleNamespace(identity="repo:bank/models:ref:refs/tags/v1",
                            _unverified_claims={"iss": GITHUB_ISSUER, "job_workflow_ref": WORKFLOW})  # fmt: skip
    assert f"https://github.com/{WORKFLOW}" in token_identities(token)
    other = SimpleNamespace(identity="a@b", _unverified_claims={"iss": "https://x", "job_workflow_ref": WORKFLOW})
    assert token_identities(other) == {"a@b"}


def test_a_malformed_release_bundle_has_no_signer_to_compare(tmp_path: Path) -> None:
    """A certificate with two SAN extensions (DuplicateExtension) or no certificate at all: nothing to compare,
    never a crash (validate exited 70 on it)."""
    import base64
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("r@b")]), False)
            .add_extension(x509.IssuerAlternativeName([x509.RFC822Name("y@z")]), False)
            .sign(k, hashes.SHA256()))  # fmt: skip
    der = cert.public_bytes(serialization.Encoding.DER).replace(
        bytes.fromhex("0603551d12"), bytes.fromhex("0603551d11")
    )
    bundle = tmp_path / "b.json"
    bundle.write_text(
        json.dumps({"verificationMaterial": {"certificate": {"rawBytes": base64.b64encode(der).decode()}}})
    )
    assert release_signers(bundle) == ()
    bundle.write_text("{}")
    assert release_signers(bundle) == ()
