"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

Public facade: the stage functions and result types. The CLI imports only from here.
Importing it does not import torch or sigstore: reading and verifying packs needs NumPy;
packing imports the quantizer (torch), signing imports sigstore, when they are called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    Finding,
    InvalidInput,
    MalformedModel,
    MalformedPack,
    MalformedSafetensors,
    OperationalError,
    UcAttestError,
    UnsupportedTensor,
    UsageError,
    VerificationFailed,
)
from .export import export_reconstruction
from .manifest import Manifest, TensorEntry
from .pack import MANIFEST_NAME, load_manifest
from .quant import DEFAULT_SCHEME, Scheme
from .verifier import Check, PackCheck, Verdict, check_pack, check_rebuild, gate, load_verified, verify, verify_pack

if TYPE_CHECKING:
    from .attest import AttestResult, ValidateResult
    from .instance.server import InstanceServer
    from .instance.state import InstanceState
    from .pack.writer import PackResult, Progress
    from .policy.model import Policy
    from .trust import TrustSelection

__version__ = "0.1.0"


def write_pack(
    source_dir: Path,
    out_dir: Path,
    scheme: Scheme = DEFAULT_SCHEME,
    device: str = "auto",
    *,
    force: bool = False,
    progress: Progress | None = None,
    calibration: Path | None = None,
) -> PackResult:
    """Quantize a model directory into a new pack (imports torch on first use).

    ``calibration``: a calibration file (second moments per weight, :mod:`uc_attest.calibration`);
    its committed form is stored in the pack and drives error feedback (``uc-rht-ldlq/1``).
    Every name in it must be a quantized tensor of the model."""
    from .calibration import Calibration
    from .pack.writer import write_pack as _write_pack

    kw: dict[str, Any] = {"force": force}
    if progress is not None:
        kw["progress"] = progress
    if calibration is None:
        return _write_pack(Path(source_dir), Path(out_dir), scheme, device, **kw)
    cal = Calibration(Path(calibration), scheme)
    try:
        cal.check_names(Path(source_dir))
        return _write_pack(Path(source_dir), Path(out_dir), scheme, device, moments=cal, **kw)
    finally:
        cal.close()


def calibrate(model_dir: Path, texts: list[str], output: Path, max_length: int = 128) -> dict[str, Any]:
    """Collect the second moments of every linear layer's input over ``texts`` (transformers) and
    write a calibration file; returns a summary."""
    import hashlib

    from .calibration import collect, write

    moments = collect(Path(model_dir), texts, max_length)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    write(Path(output), moments, f"{len(texts)} texts, sha256 {digest}, max_length {max_length}")
    return {"ok": True, "output": str(output), "tensors": len(moments), "texts": len(texts), "text_sha256": digest}


def select_trust(trust_config: Path | None, instance: Path | None) -> TrustSelection:
    """Exactly one of a sigstore ClientTrustConfig file or an embedded instance directory."""
    from .trust import select_trust as _select

    return _select(trust_config, instance)


def attest_pack(pack_dir: Path, trust: TrustSelection, **kw: Any) -> AttestResult:
    """Sign and log the provenance statement of a pack (imports sigstore on first use)."""
    from .attest import attest_pack as _attest

    return _attest(Path(pack_dir), trust, **kw)


def validate_pack(pack_dir: Path, report: Path, trust: TrustSelection, **kw: Any) -> ValidateResult:
    """Sign and log a validation attestation of the pack's exact reconstruction."""
    from .attest import validate_pack as _validate

    return _validate(Path(pack_dir), Path(report), trust, **kw)


def load_trust_config(path: Path) -> Any:
    from .signing import load_trust_config as _load

    return _load(path)


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file (errors name file, line and field)."""
    from .policy.model import load_policy as _load

    return _load(Path(path))[0]


def policy_schema() -> dict[str, Any]:
    from .policy.model import policy_schema as _schema

    return _schema()


def watch_log(state: Path, trust_config: Path | None = None, instance: Path | None = None) -> list[Any]:
    """Witness every log of the trust root: verify the new checkpoint and its consistency with the
    stored one (fork/rollback → a failed result). Unreachable log → OperationalError naming the URL."""
    from .tlog.client import LogMisbehaved, LogUnreachable, RekorClient, log_keys
    from .tlog.monitor import WatchResult, watch

    trust = select_trust(trust_config, instance)
    results = []
    for log in log_keys(trust.load()):
        client = RekorClient(log)
        try:
            results.append(watch(Path(state), client))
        except LogUnreachable as exc:
            raise OperationalError(f"log unreachable: {exc}", url=log.base_url) from None
        except LogMisbehaved as exc:
            results.append(WatchResult(log.base_url, None, None, False, str(exc)))
    return results


def audit(target: Path | None = None, **kw: Any) -> Any:
    """Find and verify every log entry about a pack / manifest root / digest (an AuditReport)."""
    from .auditor import audit as _audit

    return _audit(target, **kw)


def inventory(**kw: Any) -> list[dict[str, Any]]:
    """Every release in the log grouped by source model, with validations and status."""
    from .auditor import inventory as _inventory

    return _inventory(**kw)


def verify_any_bundle(bundle: Path, artifact: str, **kw: Any) -> None:
    """sigstore-conformance ``verify-bundle``: any Sigstore bundle, for auditors."""
    from .signing import verify_any_bundle as _verify

    _verify(Path(bundle), artifact, **kw)


def render_report_html(report: dict[str, Any]) -> str:
    from .report import render_html

    return render_html(report)


def init_instance(root: Path, port: int = 8787, *, force: bool = False) -> InstanceState:
    """Create an embedded instance state directory (DEV: its issuer can mint any identity)."""
    from .instance.state import init_instance as _init

    return _init(root, port, force=force)


def load_instance(root: Path) -> InstanceState:
    from .instance.state import InstanceState as _State

    return _State.load(root)


def instance_server(root: Path, port: int | None = None) -> InstanceServer:
    from .instance.server import InstanceServer as _Server

    return _Server(load_instance(root), port)


def dev_token(root: Path, identity: str, lifetime_s: int = 600) -> str:
    """Mint a dev identity token from an embedded instance's OIDC key."""
    from .instance.oidc import mint_token

    state = load_instance(root)
    return mint_token(state.oidc_key, state.issuer, identity, lifetime_s=lifetime_s)


__all__ = [
    "DEFAULT_SCHEME",
    "MANIFEST_NAME",
    "Check",
    "Finding",
    "InvalidInput",
    "MalformedModel",
    "MalformedPack",
    "MalformedSafetensors",
    "Manifest",
    "OperationalError",
    "PackCheck",
    "Scheme",
    "TensorEntry",
    "UcAttestError",
    "UnsupportedTensor",
    "UsageError",
    "Verdict",
    "VerificationFailed",
    "__version__",
    "attest_pack",
    "audit",
    "calibrate",
    "check_pack",
    "check_rebuild",
    "dev_token",
    "export_reconstruction",
    "gate",
    "init_instance",
    "instance_server",
    "inventory",
    "load_instance",
    "load_manifest",
    "load_policy",
    "load_trust_config",
    "load_verified",
    "policy_schema",
    "render_report_html",
    "select_trust",
    "validate_pack",
    "verify",
    "verify_any_bundle",
    "verify_pack",
    "watch_log",
    "write_pack",
]
