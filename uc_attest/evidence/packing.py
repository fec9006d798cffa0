"""The pack pipeline (``pack/api.py``) with the source's OpenSSF Model Signing signature verified first.

The pack layer sits above the verifiers in the pipeline, so the check of a vendor's signature is handed to it
from here, as the gate ``run_pack`` calls before any tensor is read; ``write_pack`` is the same with the
request's options as keywords (the ``PackRequest`` fields and defaults)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Unpack, assert_never

from ..anchors import CaChain, OmsSignature, PublicKey, SigstoreIdentity
from ..claims.validation import Runtime
from ..errors import UsageError, VerificationFailed
from ..pack.api import PACK_SCHEME, PackOptions, PackProgress, PackRequest
from ..pack.api import run_pack as _run_pack
from ..quant.scheme import Scheme
from ..signing.attest import SignAs, ValidateResult
from ..signing.trust import Trust

if TYPE_CHECKING:  # the writer imports torch: validate_pack and verify_source run without it
    from ..pack.writer import KeptSignature, PackResult
    from .oms import OmsVerified


def write_pack(
    source_dir: Path | str,
    out_dir: Path | str,
    scheme: Scheme = PACK_SCHEME,
    device: str = "auto",
    *,
    progress: PackProgress | None = None,
    warn: Callable[[str], None] | None = None,
    **options: Unpack[PackOptions],
) -> PackResult:
    """Quantize a model directory into a new pack, all or nothing: :func:`run_pack` of
    ``PackRequest(source_dir, out_dir, scheme, device, **options)`` (its fields say what each option means).

    Without options it does what ``uc-attest pack SRC -o OUT`` does, byte for byte: calibrate when the model
    can be run (else ``warn``, by default a ``UserWarning``), and spend at most ``DEFAULT_BUDGET`` bits per
    quantized weight by measurement on ``PACK_SCHEME``. ``calibration=None, allocation=None`` (or
    ``run_pack(PackRequest.uncalibrated(...))``) packs ``scheme`` as it is, without measuring anything."""
    request = PackRequest(Path(source_dir), Path(out_dir), scheme, device, **options)
    return run_pack(request, progress=progress, warn=warn)


def run_pack(
    request: PackRequest, *, progress: PackProgress | None = None, warn: Callable[[str], None] | None = None
) -> PackResult:
    """Run the pack pipeline for ``request``; ``progress`` sees each stage and how far it is, ``warn`` what the
    pack does without (default: ``warnings.warn``, a UserWarning)."""
    return _run_pack(request, progress=progress, warn=warn or _user_warning, source_gate=source_gate)


def _user_warning(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def source_gate(request: PackRequest, read: list[str]) -> KeptSignature:
    """Verify the request's source OMS signature: what the pack keeps, records and checks again as it reads."""
    from ..pack.writer import KeptSignature
    from .oms import source_gate as _gate

    signature = request.source_signature
    assert signature is not None
    verified = verify_source(request.source, signature)
    if verified.findings:
        raise VerificationFailed(verified.findings)
    record, check = _gate(verified, request.source, signature.file, read)
    return KeptSignature(record, verified.raw, check)  # the bytes that verified, never the file read again


def verify_source(model_dir: Path, signature: OmsSignature, *, offline: bool = False) -> OmsVerified:
    """``signature`` verified by its method, and ``model_dir`` checked against it (findings, not raised); the
    one dispatch on an OMS method (the pack's source gate and ``verify_oms_model``)."""
    from ..signing.trust import resolve_trust
    from .identity import SignerSpec, signer_under
    from .oms import verify_oms_certificate, verify_oms_key, verify_oms_sigstore

    method = signature.method
    if isinstance(method, CaChain):
        who = method.signer
        signers = None if who is None else [SignerSpec(who.issuer, who.identity)]
        return verify_oms_certificate(model_dir, signature.file, method.path, signers)
    if isinstance(method, PublicKey):
        return verify_oms_key(model_dir, signature.file, method.path)
    if isinstance(method, SigstoreIdentity):
        trust = resolve_trust(method.trust, offline=offline)
        signer = signer_under(method.identity, method.issuer, trust)
        return verify_oms_sigstore(model_dir, signature.file, trust, [signer])
    assert_never(method)


def release_signers(bundle: Path) -> tuple[str, ...]:
    """The identities a release bundle's certificate names (read, not verified: enough to refuse signing a
    validation as the same identity; nothing is trusted on it). Empty when there is no readable bundle."""
    from ..core.x509names import cert_identities
    from .bundle import leaf_certificate, read_bundle

    if not Path(bundle).is_file():
        return ()
    try:
        _raw, doc = read_bundle(Path(bundle))
        return tuple(cert_identities(leaf_certificate(doc, str(bundle))))
    except Exception:  # noqa: BLE001 - any malformed certificate (e.g. a duplicated extension): nothing to compare
        return ()


def validate_pack(
    pack_dir: Path,
    report_path: Path,
    trust: Trust,
    *,
    sign_as: SignAs | None = None,  # None: an identity token from the environment, or the role's dev identity
    bundle_out: Path | None = None,
    release_bundle: Path | None = None,
    allow_release_signer: bool = False,
    runtime: Runtime | None = None,
) -> ValidateResult:
    """Sign and log a validation of ``pack_dir`` (``signing.attest.validate_pack``), refusing to sign it as the
    identity that signed the pack's release (``release_bundle``, by default ``<pack>.sigstore.json``) unless
    ``allow_release_signer``. ``runtime``: what the metrics were measured with (else the report's own)."""
    from ..signing.attest import RELEASE_SUFFIX, bundle_beside
    from ..signing.attest import validate_pack as _validate

    release = release_bundle or bundle_beside(Path(pack_dir), RELEASE_SUFFIX)
    if release_bundle is not None and not Path(release_bundle).is_file():
        raise UsageError(f"{release_bundle}: release bundle not found")
    same = () if allow_release_signer else release_signers(release)
    return _validate(
        pack_dir,
        report_path,
        trust,
        sign_as=sign_as,
        bundle_out=bundle_out,
        release_signers=same,
        runtime=runtime,
    )
