"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

The typed facade: the stage functions and every result type. The CLI imports only from here.
Importing it imports only the error tree, the manifest and the pack reader (NumPy): each stage imports
what it needs when it is called (torch to pack and serve, sigstore to sign and verify bundles), and the
result types of those stages load on first use (``uc.Verdict``...), so ``benchmarks/gpu_check.sh`` runs
where only torch, NumPy and safetensors are installed, and the CLI starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The audit and verify packages (whose __init__ import nothing) are imported here, before the functions of
# the same names are defined: a first import of a subpackage sets the parent's attribute, which would
# otherwise replace ``uc.audit`` / ``uc.verify`` by the package when a stage first runs.
from . import audit as _audit_package  # noqa: F401
from . import verify as _verify_package  # noqa: F401

del verify  # noqa: F821 - the subpackage's name, freed for the stage (__getattr__)
from .errors import (
    EXIT_DENIED,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_OPERATIONAL,
    EXIT_USAGE,
    Finding,
    InvalidInput,
    LogMisbehaved,
    LogUnreachable,
    MalformedBundle,
    MalformedModel,
    MalformedPack,
    MalformedSafetensors,
    OperationalError,
    SignatureInvalid,
    UcAttestError,
    UnsupportedTensor,
    UsageError,
    VerificationFailed,
)
from .manifest import Manifest, TensorEntry
from .pack import MANIFEST_NAME, PackCheck, load_manifest
from .pack.api import (
    DEFAULT_BUDGET,
    NO_CALIBRATION_COST,
    PACK_SCHEME,
    CalibrateMode,
    PackProgress,
    PackRequest,
    scheme_from_options,
)
from .quant import DEFAULT_SCHEME, Scheme
from .quant.records import QuantRecord

if TYPE_CHECKING:  # the lazily loaded names (__getattr__), for type checkers
    from .audit.custody import AuditReport
    from .evidence.conformance import BundleVerified
    from .instance.http import InstanceServer
    from .instance.state import InstanceState
    from .pack.check import Progress
    from .pack.writer import PackResult
    from .policy.model import Policy
    from .policy.rules import Check
    from .runtime.loader import load_verified
    from .runtime.model import load_model
    from .runtime.serve import RunResult, embed, generate
    from .signing.attest import AttestResult, ValidateResult
    from .signing.trust import Trust, select_trust, trust_from_options
    from .signing.trust import Trust as TrustRoot
    from .transparency.follow import FollowResult
    from .transparency.monitor import WatchResult
    from .verify.anchor import Anchor, AnchorKind, anchor_from_options
    from .verify.api import check_rebuild, verify, verify_oms_model
    from .verify.oci import verify_oci
    from .verify.reconstruct import Reconstruction, reconstruct
    from .verify.result import Verdict

__version__ = "0.1.0"


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
        Path(source_dir), Path(out_dir), scheme, device, calibrate=calibrate, calibration=calibration,
        calibration_text=calibration_text, bits_budget=bits_budget, budget_strict=budget_strict,
        source_signature=source_signature, source_identity=source_identity, source_issuer=source_issuer,
        source_key=source_key, source_cert_chain=source_cert_chain, trust_config=trust_config, instance=instance,
        force=force,
    )  # fmt: skip
    return run_pack(request, progress=progress, warn=warn)


def run_pack(
    request: PackRequest, *, progress: PackProgress | None = None, warn: Callable[[str], None] | None = None
) -> PackResult:
    """Run the pack pipeline (:mod:`uc_attest.pack.api`) for ``request``; ``progress`` sees each stage and
    how far it is, ``warn`` what the pack does without (default: ``warnings.warn``, a UserWarning)."""
    from .pack.api import run_pack as _run_pack

    return _run_pack(request, progress=progress, warn=warn or _user_warning, source_gate=_source_gate)


def _user_warning(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=2)


def _source_gate(request: PackRequest, read: list[str]) -> Any:
    """Verify the request's source OMS signature (evidence.oms, below the pack layer, hence here): what the
    pack records and checks. The combinations of anchor fields were checked when the request was made."""
    from .evidence.identity import SignerSpec
    from .evidence.oms import source_gate, verify_oms

    r = request
    assert r.source_signature is not None
    identity, issuer = r.source_identity, r.source_issuer
    if r.source_cert_chain is not None:
        signers = [SignerSpec(issuer, identity)] if identity and issuer else None
        verified = verify_oms(r.source, r.source_signature, signers=signers, cert_chain=r.source_cert_chain)
    elif r.source_key is not None:
        verified = verify_oms(r.source, r.source_signature, key=r.source_key)
    else:
        from .signing.trust import select_trust

        trust = select_trust(r.trust_config, r.instance)
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--source-signature needs --source-identity and --source-issuer (or --source-key)")
        verified = verify_oms(r.source, r.source_signature, trust=trust, signers=[SignerSpec(iss, identity)])
    if verified.findings:
        raise VerificationFailed(verified.findings)
    return source_gate(verified, r.source, r.source_signature, read)


def push(pack_dir: Path, reference: str, *, plain_http: bool = False) -> Any:
    """Push a pack and the bundles beside it to an OCI registry (``oci://HOST/REPO[:TAG]``); a PushResult
    with the pack manifest's digest and what was uploaded (nothing the registry already has)."""
    from .oci import Reference, push_pack

    return push_pack(Path(pack_dir), Reference.parse(reference), plain_http=plain_http)


def pull(reference: str, out_dir: Path, *, plain_http: bool = False, force: bool = False) -> Any:
    """Pull a pack (by digest; a tag is resolved to one, which the result names) and its bundles: every blob
    checked against its descriptor while streaming, the directory written atomically."""
    from .oci import Reference, pull_pack

    return pull_pack(Reference.parse(reference), Path(out_dir), plain_http=plain_http, force=force)


def list_repository(reference: str, *, plain_http: bool = False) -> list[dict[str, Any]]:
    """What an OCI repository holds: tag -> digest -> manifest root -> referrer bundles by role -> status."""
    from .oci import Reference
    from .oci.artifact import list_repository as _list

    return _list(Reference.parse(reference), plain_http=plain_http)


def read_calibration_text(path: Path) -> list[str]:
    """The non-empty lines of a calibration text file; exit 3 naming it when empty, binary or not UTF-8."""
    from .calibration.corpus import read_text_file

    return read_text_file(Path(path)).lines


def calibrate(model_dir: Path, texts: list[str], output: Path, max_length: int = 128) -> dict[str, Any]:
    """Collect the second moments of every linear layer's input over ``texts`` (transformers) and
    write a calibration file; returns a summary."""
    import hashlib

    from .calibration import collect, write

    moments = collect(Path(model_dir), texts, max_length)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    write(Path(output), moments, f"{len(texts)} texts, sha256 {digest}, max_length {max_length}")
    return {"ok": True, "output": str(output), "tensors": len(moments), "texts": len(texts), "text_sha256": digest}


def gate(
    pack_dir: Path, policy: Path, validations: Sequence[Path] | None = None, *, now: float | None = None
) -> Verdict:
    """The change gate: does this manifest root have a valid validation under the policy?"""
    from .verify.api import gate as _gate

    return _gate(Path(pack_dir), Path(policy), validations, now=now)


def check_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """The pack against its own manifest or a separately kept one: every tensor and file (no signature)."""
    from .verify.api import check_pack as _check

    return _check(Path(pack_dir), manifest, workers=workers, progress=progress)


def verify_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """Like :func:`check_pack`, raising :class:`VerificationFailed` that lists every finding."""
    from .verify.api import verify_pack as _verify_pack

    return _verify_pack(Path(pack_dir), manifest, workers=workers, progress=progress)


def attest_pack(
    pack_dir: Path,
    trust: Trust,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
    inline: str = "auto",
    pack_device: str = "unrecorded",
    oms: bool = True,
    oms_out: Path | None = None,
) -> AttestResult:
    """Sign and log the provenance statement of a pack (its files must match its manifest) and, unless
    ``oms=False``, an OpenSSF Model Signing signature over its files (``PACK.model.sig``)."""
    from .signing.attest import attest_pack as _attest

    return _attest(
        Path(pack_dir), trust, identity_token=identity_token, dev_identity=dev_identity, bundle_out=bundle_out,
        inline=inline, pack_device=pack_device, oms=oms, oms_out=oms_out,
    )  # fmt: skip


def validate_pack(
    pack_dir: Path,
    report: Path,
    trust: Trust,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
) -> ValidateResult:
    """Sign and log a validation attestation of the pack's exact reconstruction (every tensor checked first)."""
    from .signing.attest import validate_pack as _validate

    return _validate(
        Path(pack_dir),
        Path(report),
        trust,
        identity_token=identity_token,
        dev_identity=dev_identity,
        bundle_out=bundle_out,
    )


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file (errors name file, line and field)."""
    from .policy.model import load_policy as _load

    return _load(Path(path))[0]


def policy_schema() -> dict[str, Any]:
    from .policy.model import policy_schema as _schema

    return _schema()


def watch_log(
    state: Path,
    trust_config: Path | None = None,
    instance: Path | None = None,
    *,
    index: Path | None = None,
    identities: Sequence[str] = (),
    identity_regexes: Sequence[str] = (),
    digests: Sequence[str] = (),
    mirror: str | None = None,
) -> list[WatchResult | FollowResult]:
    """Witness every log of the trust root: Rekor v1 logs by checkpoint and consistency proof (``state``,
    JSON); tile logs (Rekor v2) by catching up from their tiles into the index (default beside ``state``),
    indexing the entries by the watched identities / digests (all when none). A fork, rollback or a tile
    or entry that does not verify → a failed result naming it. Unreachable log → OperationalError."""
    from .audit.custody import index_for
    from .audit.tilelog import follow_logs
    from .signing.trust import select_trust
    from .transparency.follow import TileIndex, Watch
    from .transparency.monitor import WatchResult, watch
    from .transparency.rekor_v1 import RekorClient

    trust = select_trust(trust_config, instance)
    w = Watch(tuple(identities), tuple(identity_regexes), tuple(digests))
    results: list[WatchResult | FollowResult] = []
    for log in trust.logs():
        try:
            results.append(watch(Path(state), RekorClient(log)))
        except LogMisbehaved as exc:
            results.append(WatchResult(log.base_url, None, None, False, exc.message))
    if trust.tile_logs():
        idx = TileIndex(index_for(Path(state), index))
        try:
            results += [r for r, _ in follow_logs(trust, idx, w, mirror)]
        finally:
            idx.close()
    return results


def audit(
    target: Path | None = None,
    *,
    manifest_root: str | None = None,
    digest: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    state: Path | None = None,
    index: Path | None = None,
    bundles: Sequence[Path] = (),
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root (``sha256:<hex>`` or hex) / digest.
    On a Rekor v2 log the pack's bundles and ``bundles`` are proven from the tiles; ``index`` (default
    beside ``state``; none: the log is scanned) lists every other entry by their signers."""
    from .audit.custody import audit as _audit
    from .core.digest import Digest

    root = None
    if manifest_root is not None:
        try:
            root = Digest.parse(manifest_root) if manifest_root.startswith("sha256:") else Digest(manifest_root)
        except ValueError:
            raise InvalidInput(f"--manifest-root {manifest_root!r} is not sha256:<64 hex>") from None
    from .signing.trust import select_trust

    trust = select_trust(trust_config, instance)
    return _audit(Path(target) if target else None, trust, manifest_root=root, digest=digest, state=state,
                  index=index, bundles=bundles)  # fmt: skip


def inventory(
    *,
    trust_config: Path | None = None,
    instance: Path | None = None,
    index: Path | None = None,
    bundle_dirs: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """Every release in the logs grouped by source model, with validations and status; bad entries listed.
    On a Rekor v2 log statements come from the bundles in ``bundle_dirs`` (the index: as in ``audit``)."""
    from .audit.inventory import inventory as _inventory
    from .signing.trust import select_trust

    return _inventory(select_trust(trust_config, instance), index=index, bundle_dirs=bundle_dirs)


def verify_any_bundle(
    bundle: Path,
    artifact: str,
    *,
    identity: str | None = None,
    issuer: str | None = None,
    key: Path | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
    require_tlog: bool = True,
) -> BundleVerified:
    """sigstore-conformance ``verify-bundle``: any Sigstore bundle, for auditors; both verifiers run (raises if
    it does not verify). ``require_tlog=False`` admits a bundle without a log entry (TSA-only)."""
    from .evidence.conformance import verify_any_bundle as _verify

    return _verify(
        Path(bundle), artifact, identity=identity, issuer=issuer, key=key, trusted_root=trusted_root,
        staging=staging, require_tlog=require_tlog,
    )  # fmt: skip


def render_report_html(report: dict[str, Any]) -> str:
    """The audit report as one self-contained HTML page (every untrusted field escaped)."""
    from .audit.report import render_html

    return render_html(report)


def write_report_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML audit report atomically (a reader sees the old file or the whole new one)."""
    from .core.fsutil import atomic_write_bytes

    atomic_write_bytes(Path(path), render_report_html(report).encode("utf-8"))


def init_instance(root: Path, port: int = 8787, *, force: bool = False, rekor_version: int = 2) -> InstanceState:
    """Create an embedded instance state directory (DEV: its issuer can mint any identity); its signing
    config prefers Rekor ``rekor_version`` (2: tiles + TSA timestamps; 1: Rekor v1 with its SET)."""
    from .instance.state import init_instance as _init

    return _init(root, port, force=force, rekor_version=rekor_version)


def load_instance(root: Path) -> InstanceState:
    from .instance.state import InstanceState as _State

    return _State.load(root)


def instance_server(root: Path, port: int | None = None, *, move: bool = False) -> InstanceServer:
    """The instance's HTTP service (``.start()`` in a thread, ``.serve_forever()``). Another port than the
    trust config names is refused unless ``move`` rewrites the trust config for it."""
    from .instance.http import InstanceServer as _Server

    return _Server(load_instance(root), port, move=move)


def dev_token(root: Path, identity: str, lifetime_s: int = 600) -> str:
    """Mint a dev identity token from an embedded instance's OIDC key."""
    from .instance.oidc import mint_token

    state = load_instance(root)
    return mint_token(state.oidc_key, state.issuer, identity, lifetime_s=lifetime_s)


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_SCHEME",
    "EXIT_DENIED",
    "EXIT_INTERNAL",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_OPERATIONAL",
    "EXIT_USAGE",
    "MANIFEST_NAME",
    "NO_CALIBRATION_COST",
    "PACK_SCHEME",
    "Anchor",
    "AnchorKind",
    "AttestResult",
    "AuditReport",
    "Check",
    "Finding",
    "InstanceServer",
    "InstanceState",
    "InvalidInput",
    "LogMisbehaved",
    "LogUnreachable",
    "MalformedBundle",
    "MalformedModel",
    "MalformedPack",
    "MalformedSafetensors",
    "Manifest",
    "OperationalError",
    "PackCheck",
    "PackProgress",
    "PackRequest",
    "PackResult",
    "Policy",
    "Progress",
    "QuantRecord",
    "Reconstruction",
    "RunResult",
    "Scheme",
    "SignatureInvalid",
    "TensorEntry",
    "Trust",
    "TrustRoot",
    "UcAttestError",
    "UnsupportedTensor",
    "UsageError",
    "ValidateResult",
    "Verdict",
    "VerificationFailed",
    "WatchResult",
    "__version__",
    "anchor_from_options",
    "attest_pack",
    "audit",
    "calibrate",
    "check_pack",
    "check_rebuild",
    "dev_token",
    "embed",
    "gate",
    "generate",
    "init_instance",
    "instance_server",
    "inventory",
    "list_repository",
    "load_instance",
    "load_manifest",
    "load_model",
    "load_policy",
    "load_verified",
    "policy_schema",
    "pull",
    "push",
    "read_calibration_text",
    "reconstruct",
    "render_report_html",
    "run_pack",
    "scheme_from_options",
    "select_trust",
    "trust_from_options",
    "validate_pack",
    "verify",
    "verify_any_bundle",
    "verify_oci",
    "verify_oms_model",
    "verify_pack",
    "watch_log",
    "write_pack",
    "write_report_html",
]


def __getattr__(name: str) -> Any:
    """Result types of stages that import torch or sigstore, loaded on first use (``uc.AttestResult``...)."""
    lazy = {
        # the trust anchor and trust root (one value each, built at the edge) and the stages that take them
        "Anchor": ("verify.anchor", "Anchor"),
        "AnchorKind": ("verify.anchor", "AnchorKind"),
        "anchor_from_options": ("verify.anchor", "anchor_from_options"),
        "TrustRoot": ("signing.trust", "Trust"),
        "trust_from_options": ("signing.trust", "trust_from_options"),
        "select_trust": ("signing.trust", "select_trust"),
        "verify": ("verify.api", "verify"),
        "verify_oms_model": ("verify.api", "verify_oms_model"),
        "check_rebuild": ("verify.api", "check_rebuild"),
        "verify_oci": ("verify.oci", "verify_oci"),
        "reconstruct": ("verify.reconstruct", "reconstruct"),
        "load_verified": ("runtime.loader", "load_verified"),
        "load_model": ("runtime.model", "load_model"),
        "generate": ("runtime.serve", "generate"),
        "embed": ("runtime.serve", "embed"),
        "Check": ("policy.rules", "Check"),
        "Reconstruction": ("verify.reconstruct", "Reconstruction"),
        "Verdict": ("verify.result", "Verdict"),
        "AttestResult": ("signing.attest", "AttestResult"),
        "ValidateResult": ("signing.attest", "ValidateResult"),
        "AuditReport": ("audit.custody", "AuditReport"),
        "PackResult": ("pack.writer", "PackResult"),
        "Progress": ("pack.check", "Progress"),
        "Policy": ("policy.model", "Policy"),
        "RunResult": ("runtime.serve", "RunResult"),
        "Trust": ("signing.trust", "Trust"),
        "WatchResult": ("transparency.monitor", "WatchResult"),
        "InstanceServer": ("instance.http", "InstanceServer"),
        "InstanceState": ("instance.state", "InstanceState"),
    }
    if name not in lazy:
        raise AttributeError(f"module 'uc_attest' has no attribute {name!r}")
    import importlib

    module, attr = lazy[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)
