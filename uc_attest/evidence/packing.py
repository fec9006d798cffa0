"""The pack pipeline (``pack/api.py``) with the source's OpenSSF Model Signing signature verified first.

The pack layer sits above the verifiers in the pipeline, so the check of a vendor's signature is handed to it
from here, as the gate ``run_pack`` calls before any tensor is read; ``write_pack`` is the same with keyword
options (the ``PackRequest`` fields and defaults)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..claims.validation import Runtime
from ..errors import UsageError, VerificationFailed
from ..pack.api import DEFAULT_BUDGET, PACK_SCHEME, CalibrateMode, PackProgress, PackRequest
from ..pack.api import run_pack as _run_pack
from ..pack.writer import PackResult
from ..quant.scheme import Scheme
from ..signing.attest import ValidateResult
from ..signing.trust import Trust


def write_pack(
    source_dir: Path,
    out_dir: Path,
    scheme: Scheme = PACK_SCHEME,
    device: str = "auto",
    *,
    force: bool = False,
    progress: PackProgress | None = None,
    calibrate: CalibrateMode = "auto",
    calibration: Path | None = None,
    calibration_text: Path | None = None,
    bits_budget: float | None = DEFAULT_BUDGET,
    budget_strict: bool = False,
    source_signature: Path | None = None,
    source_identity: str | None = None,
    source_issuer: str | None = None,
    source_key: Path | None = None,
    source_cert_chain: Path | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> PackResult:
    """Quantize a model directory into a new pack, all or nothing: :func:`run_pack` of the
    :class:`PackRequest` these arguments make (its fields, with the same defaults, say what each means).

    Without options it does what ``uc-attest pack SRC -o OUT`` does, byte for byte: calibrate when the model
    can be run (else ``warn``, by default a ``UserWarning``), and spend at most ``DEFAULT_BUDGET`` bits per
    quantized weight by measurement on ``PACK_SCHEME``. ``calibrate="none", bits_budget=None`` (or
    ``run_pack(PackRequest.uncalibrated(...))``) packs ``scheme`` as it is, without measuring anything."""
    request = PackRequest(
        Path(source_dir),
        Path(out_dir),
        scheme,
        device,
        calibrate=calibrate,
        calibration=calibration,
        calibration_text=calibration_text,
        bits_budget=bits_budget,
        budget_strict=budget_strict,
        source_signature=source_signature,
        source_identity=source_identity,
        source_issuer=source_issuer,
        source_key=source_key,
        source_cert_chain=source_cert_chain,
        trust_config=trust_config,
        instance=instance,
        force=force,
    )
    return run_pack(request, progress=progress, warn=warn)


def run_pack(
    request: PackRequest, *, progress: PackProgress | None = None, warn: Callable[[str], None] | None = None
) -> PackResult:
    """Run the pack pipeline for ``request``; ``progress`` sees each stage and how far it is, ``warn`` what the
    pack does without (default: ``warnings.warn``, a UserWarning)."""
    return _run_pack(request, progress=progress, warn=warn or _user_warning, source_gate=source_gate)


def _user_warning(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def source_gate(request: PackRequest, read: list[str]) -> Any:
    """Verify the request's source OMS signature: what the pack records and checks. The combinations of
    anchor fields were checked when the request was made."""
    from ..signing.trust import select_trust
    from .identity import SignerSpec
    from .oms import source_gate as _gate
    from .oms import verify_oms

    r = request
    assert r.source_signature is not None
    identity, issuer = r.source_identity, r.source_issuer
    if r.source_cert_chain is not None:
        signers = [SignerSpec(issuer, identity)] if identity and issuer else None
        verified = verify_oms(r.source, r.source_signature, signers=signers, cert_chain=r.source_cert_chain)
    elif r.source_key is not None:
        verified = verify_oms(r.source, r.source_signature, key=r.source_key)
    else:
        trust = select_trust(r.trust_config, r.instance)
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--source-signature needs --source-identity and --source-issuer (or --source-key)")
        verified = verify_oms(r.source, r.source_signature, trust=trust, signers=[SignerSpec(iss, identity)])
    if verified.findings:
        raise VerificationFailed(verified.findings)
    return _gate(verified, r.source, r.source_signature, read)


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
    identity_token: str | None = None,
    dev_identity: str | None = None,
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
        identity_token=identity_token,
        dev_identity=dev_identity,
        bundle_out=bundle_out,
        release_signers=same,
        runtime=runtime,
    )
