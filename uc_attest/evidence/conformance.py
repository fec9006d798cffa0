"""Verify any Sigstore bundle for auditors (the sigstore-conformance ``verify-bundle`` client protocol).

Both verifiers run (``check.py``): sigstore-python where it reads the shape, the own path (``verifier.py``)
always — managed keys, Rekor intoto entries, v0.1 bundles proven by a SET, TSA-only bundles included.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from ..anchors import BundleIdentity, BundleSigner, ManagedKey, TrustChoice
from ..claims.statement import COMPUTABLE
from ..core.fsutil import open_regular, read_small
from ..errors import InvalidInput, OperationalError, SignatureInvalid
from ..signing.trust import Trust, resolve_trust
from .bundle import read_bundle
from .check import check_bundle
from .identity import SignerSpec
from .verifier import Artifact


def _root_trust(trust: Trust | TrustChoice | None) -> Trust:
    """The trust root given (a file's or an instance's selected now; ``public-good`` / ``staging`` as a
    ``TrustFile``: as shipped with sigstore-python, offline), else public-good's as shipped (offline)."""
    return Trust.public_good(offline=True) if trust is None else resolve_trust(trust, offline=True)


def _artifact_of(artifact: str) -> Artifact:
    """The artifact's digests (sha256, sha384, sha512) and, when small, its bytes (an Ed25519 message
    signature needs them), read once from one descriptor of a regular file (a symbolic link followed; a FIFO or
    device is refused, never waited on nor read without end); ``sha256:<hex>`` gives one digest."""
    if artifact.startswith("sha256:"):
        hexd = artifact[7:].lower()
        try:
            if len(bytes.fromhex(hexd)) != 32:
                raise ValueError
        except ValueError:
            raise InvalidInput(f"{artifact!r} is not sha256:<64 hex>") from None
        return Artifact({"sha256": bytes.fromhex(hexd)})
    hs = {alg: hashlib.new(name) for alg, name in COMPUTABLE.items()}
    kept: bytearray | None = bytearray()
    try:
        with open_regular(Path(artifact), follow=True) as f:
            while chunk := f.read(1 << 22):
                for h in hs.values():
                    h.update(chunk)
                if kept is not None:
                    kept += chunk
                    if len(kept) > MAX_INLINE:
                        kept = None
    except (InvalidInput, OperationalError) as exc:  # not a regular file; cannot be opened
        raise InvalidInput(f"{exc.message} (the artifact)", path=artifact) from None
    except OSError as exc:
        raise InvalidInput(f"{artifact}: cannot read the artifact: {exc.strerror}", path=artifact) from None
    return Artifact({alg: h.digest() for alg, h in hs.items()}, None if kept is None else bytes(kept))


MAX_INLINE = 64 << 20


@dataclass(frozen=True)
class BundleVerified:
    """What ``verify-bundle`` verified: who signed (or a key), which verifiers accepted it, and why
    sigstore-python did not run, when it did not."""

    signer: str
    verified_by: tuple[str, ...]
    gap: str | None
    checks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """What ``verify-bundle --json`` prints."""
        return {
            "ok": True,
            "signer": self.signer,
            "verified_by": list(self.verified_by),
            "gap": self.gap,
            "checks": list(self.checks),
        }


def verify_any_bundle(
    bundle_path: Path,
    artifact: str,
    signer: BundleSigner,
    *,
    trust: Trust | TrustChoice | None = None,
    require_tlog: bool = True,
) -> BundleVerified:
    """Verify any Sigstore bundle; ``artifact`` is a file path or ``sha256:<hex>``; ``signer``: who must have
    signed (:class:`~uc_attest.anchors.BundleIdentity`) or the managed key (:class:`~uc_attest.anchors.ManagedKey`,
    its log entries still checked under the trust root). ``trust``: a selected :class:`Trust` (e.g.
    ``Trust.staging(offline=True)``), a ``TrustFile`` (a pinned trusted root, or ``public-good`` / ``staging``
    as shipped with sigstore-python, offline) or a ``TrustInstance``; None: public-good's production root as
    shipped, offline. Both verifiers run (``check.py``). Raises SignatureInvalid naming the failed check,
    InvalidInput for unusable arguments, UnsupportedBundle (exit 3) for a shape no verifier supports. A TSA-only
    bundle needs ``require_tlog=False`` (``--no-require-tlog``) unless the trusted root lists no transparency log
    (GitHub's instance)."""
    from cryptography.hazmat.primitives import serialization

    root_trust = _root_trust(trust)
    _ = root_trust.root_document  # an unusable trusted root is reported first
    model_dir = Path(artifact) if not artifact.startswith("sha256:") and Path(artifact).is_dir() else None
    art = None if model_dir is not None else _artifact_of(artifact)
    raw, doc = read_bundle(Path(bundle_path))
    public_key = None
    if isinstance(signer, ManagedKey):
        try:
            public_key = serialization.load_pem_public_key(read_small(Path(signer.path), "public key"))
        except FileNotFoundError:
            raise InvalidInput(f"{signer.path}: public key not found", path=str(signer.path)) from None
        except (OSError, ValueError) as exc:
            raise SignatureInvalid(str(bundle_path), f"the public key {signer.path} is unusable: {exc}") from None
        signers = None
    elif isinstance(signer, BundleIdentity):
        signers = [SignerSpec(signer.issuer, signer.identity)]
    else:
        assert_never(signer)
    checked = check_bundle(
        raw,
        doc,
        root_trust,
        where=str(bundle_path),
        signers=signers,
        key=public_key,
        artifact=art,
        require_tlog=require_tlog,
    )
    out = checked.outcome
    checks = list(out.checks)
    if model_dir is not None:  # an OpenSSF Model Signing signature over a model directory: every file
        checks.append(_oms_directory(model_dir, Path(bundle_path), out.payload, str(bundle_path)))
    if out.signer is not None:
        who = str(out.signer)
    elif isinstance(signer, ManagedKey):  # no certificate: only a managed key verifies such a bundle
        who = f"the key {signer.path}"
    else:
        raise SignatureInvalid(str(bundle_path), "verified without a certificate, but no key was given")
    return BundleVerified(who, checked.verified_by, checked.gap, tuple(checks))


def _oms_directory(model_dir: Path, bundle: Path, payload: bytes | None, where: str) -> str:
    from ..claims.oms import OMS_PREDICATE, diff, parse_oms, scan
    from ..claims.statement import Statement
    from ..errors import VerificationFailed

    statement = Statement.parse(payload) if payload is not None else None
    if statement is None or statement.predicate_type != OMS_PREDICATE:
        raise InvalidInput(
            f"{where}: a model directory is verified against an OpenSSF Model Signing signature; this bundle is not one"
        )
    claim = parse_oms(statement)
    findings = diff(claim, scan(model_dir, claim.serialization, exclude=(bundle,)))
    if findings:
        raise VerificationFailed(findings)
    return "oms.files"
