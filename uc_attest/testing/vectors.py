"""The third-party Sigstore bundle vectors of ``../shared/vectors``, each with what verifying it takes and the
expected outcome (for tests and ``benchmarks/bundle_table.py``; not used by the product).

Sources: the 70 sigstore-conformance bundle-verify cases (21 verify, 49 must fail) and sigstore-python's
test assets (staging Rekor v1 and v2 bundles, a production GitHub-Actions wheel attestation, CPython's
v0.1 release bundle, and the deliberately broken ones). Identities of sigstore-python's assets are read
from their certificates (what those tests pin is not in the assets); their artifacts are the files beside
them, or the digest the bundle names where the artifact is not shipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFORMANCE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
CONFORMANCE_ISSUER = "https://token.actions.githubusercontent.com"
PROD = "sigstore-python/sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json"
STAGING = "sigstore-python/sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstage.dev/trusted_root.json"


@dataclass(frozen=True)
class Vector:
    name: str
    bundle: Path
    trusted_root: Path
    expect_ok: bool
    artifact: Path | None = None  # the file, else ``digest``
    digest: str | None = None  # sha256:<hex>
    identity: str | None = None  # None: read from the certificate
    issuer: str | None = None
    key: Path | None = None

    def doc(self) -> dict[str, Any]:
        return json.loads(self.bundle.read_text())  # type: ignore[no-any-return]


def conformance(shared: Path) -> list[Vector]:
    assets = shared / "vectors" / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
    out = []
    for case in sorted(p for p in assets.iterdir() if (p / "bundle.sigstore.json").exists()):

        def read(name: str, default: str, case: Path = case) -> str:
            return (case / name).read_text().strip() if (case / name).exists() else default

        out.append(
            Vector(
                f"conformance/{case.name}",
                case / "bundle.sigstore.json",
                case / "trusted_root.json" if (case / "trusted_root.json").exists() else shared / "vectors" / PROD,
                not case.name.endswith("_fail"),
                artifact=case / "artifact" if (case / "artifact").exists() else assets / "a.txt",
                identity=read("identity", CONFORMANCE_IDENTITY),
                issuer=read("issuer", CONFORMANCE_ISSUER),
                key=case / "key.pub" if (case / "key.pub").exists() else None,
            )
        )
    return out


_SIGSTORE_PYTHON = [  # (asset, artifact file or digest or None = the bundle's message digest, root, expected)
    ("bundle.txt.sigstore", "bundle.txt", STAGING, True),
    ("bundle_v3.txt.sigstore", "bundle_v3.txt", STAGING, True),
    ("bundle_v3_alt.txt.sigstore", "bundle_v3_alt.txt", STAGING, True),
    ("integration/bundle_v3.txt.sigstore", "integration/bundle_v3.txt", STAGING, True),
    ("staging-rekor-v2.txt.sigstore.json", "staging-rekor-v2.txt", STAGING, True),
    (
        "a.dsse.staging-rekor-v2.txt.sigstore.json",
        "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf",
        STAGING,
        True,
    ),
    (
        "bundle_v3_github.whl.sigstore",
        "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201",
        PROD,
        True,
    ),
    ("integration/Python-3.12.5.tgz.sigstore", None, PROD, True),
    ("bundle_cve_2022_36056.txt.sigstore", "bundle_cve_2022_36056.txt", STAGING, False),
    ("bundle_invalid_version.txt.sigstore", "bundle_invalid_version.txt", STAGING, False),
    ("bundle_no_cert_v1.txt.sigstore", "bundle_no_cert_v1.txt", STAGING, False),
    ("bundle_no_checkpoint.txt.sigstore", "bundle_no_checkpoint.txt", STAGING, False),
    ("bundle_no_log_entry.txt.sigstore", "bundle_no_log_entry.txt", STAGING, False),
    ("bundle_v3_no_signed_time.txt.sigstore.json", "bundle_v3_no_signed_time.txt", PROD, False),
    ("tsa/bundle.duplicate.sigstore", "tsa/bundle.txt", STAGING, False),
    ("tsa/bundle.many_timestamp.sigstore", "tsa/bundle.txt", STAGING, False),
    ("tsa/bundle.txt.late_timestamp.sigstore", "tsa/bundle.txt", STAGING, False),
]


def sigstore_python(shared: Path) -> list[Vector]:
    assets = shared / "vectors" / "sigstore-python" / "test" / "assets"
    out = []
    for name, art, root, ok in _SIGSTORE_PYTHON:
        bundle = assets / name
        digest = artifact = None
        if art is None:
            md = json.loads(bundle.read_text())["messageSignature"]["messageDigest"]
            digest = "sha256:" + base64.b64decode(md["digest"]).hex()
        elif art.startswith("sha256:"):
            digest = art
        else:
            artifact = assets / art
        out.append(Vector(f"sigstore-python/{name}", bundle, shared / "vectors" / root, ok, artifact, digest))
    return out


def all_vectors(shared: Path) -> list[Vector]:
    return conformance(shared) + sigstore_python(shared)


def artifact_digest(v: Vector) -> str:
    if v.digest is not None:
        return v.digest
    assert v.artifact is not None
    return "sha256:" + hashlib.sha256(v.artifact.read_bytes()).hexdigest()
