"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

The public API, in one place: every stage function and result type, listed in ``_LAZY`` with the module that
defines it (documented with one example each in docs/api.md). Importing ``uc_attest`` imports only the error
tree; a name is imported from its module on first use, so the CLI starts fast and ``benchmarks/gpu_check.sh``
runs where only torch and NumPy are installed. Trust is one value built once at the edge: an :class:`Anchor`
variant (who must have made it), carrying the :class:`TrustRoot` (which Sigstore deployment says so) it needs.
"""

from __future__ import annotations

from typing import Any

# ``uc_attest.verify`` / ``uc_attest.audit`` are subpackages and stage functions: the packages (whose
# __init__ import nothing) are imported first and their names freed, so ``uc.verify`` is the function.
from . import audit as _audit_package  # noqa: F401
from . import errors as _errors
from . import verify as _verify_package  # noqa: F401
from .errors import *

del audit, verify  # noqa: F821

__version__ = "0.1.0"

#: public name -> (module under uc_attest, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "Anchor": ("verify.anchor", "Anchor"),
    "PolicyAnchor": ("verify.anchor", "PolicyAnchor"),
    "SignedBy": ("verify.anchor", "SignedBy"),
    "KeptManifest": ("verify.anchor", "KeptManifest"),
    "OmsAnchor": ("verify.anchor", "OmsAnchor"),
    "PackItself": ("verify.anchor", "PackItself"),
    "AnyAnchor": ("verify.anchor", "AnyAnchor"),
    "PackAnchor": ("verify.anchor", "PackAnchor"),
    "ServingAnchor": ("verify.anchor", "ServingAnchor"),
    "resolve_trust": ("signing.trust", "resolve_trust"),
    "TrustRoot": ("signing.trust", "TrustRoot"),
    "Trust": ("signing.trust", "Trust"),
    "trust_from_options": ("signing.trust", "trust_from_options"),
    "select_trust": ("signing.trust", "select_trust"),
    "OmsSignature": ("anchors", "OmsSignature"),
    "SigstoreIdentity": ("anchors", "SigstoreIdentity"),
    "PublicKey": ("anchors", "PublicKey"),
    "CaChain": ("anchors", "CaChain"),
    "CaSigner": ("anchors", "CaSigner"),
    "TrustFile": ("anchors", "TrustFile"),
    "TrustInstance": ("anchors", "TrustInstance"),
    "BundleIdentity": ("anchors", "BundleIdentity"),
    "ManagedKey": ("anchors", "ManagedKey"),
    "BundleSigner": ("anchors", "BundleSigner"),
    "PackRequest": ("pack.api", "PackRequest"),
    "Calibration": ("pack.api", "Calibration"),
    "CalibrationMode": ("pack.api", "CalibrationMode"),
    "MomentsFile": ("pack.api", "MomentsFile"),
    "Allocation": ("pack.api", "Allocation"),
    "PackProgress": ("pack.api", "PackProgress"),
    "DEFAULT_BUDGET": ("pack.api", "DEFAULT_BUDGET"),
    "PACK_SCHEME": ("pack.api", "PACK_SCHEME"),
    "NO_CALIBRATION_COST": ("pack.api", "NO_CALIBRATION_COST"),
    "scheme_from_options": ("pack.api", "scheme_from_options"),
    "write_pack": ("evidence.packing", "write_pack"),
    "run_pack": ("evidence.packing", "run_pack"),
    "PackResult": ("pack.writer", "PackResult"),
    "MANIFEST_NAME": ("pack.layout", "MANIFEST_NAME"),
    "PackCheck": ("pack.check", "PackCheck"),
    "Progress": ("pack.check", "Progress"),
    "load_manifest": ("pack.facts", "load_manifest"),
    "Manifest": ("manifest", "Manifest"),
    "TensorEntry": ("manifest", "TensorEntry"),
    "Scheme": ("quant.scheme", "Scheme"),
    "DEFAULT_SCHEME": ("quant.scheme", "DEFAULT_SCHEME"),
    "QuantRecord": ("quant.records", "QuantRecord"),
    "read_calibration_text": ("calibration.api", "read_calibration_text"),
    "calibrate": ("calibration.api", "calibrate"),
    "push": ("oci.api", "push"),
    "pull": ("oci.api", "pull"),
    "PushResult": ("oci.artifact", "PushResult"),
    "PullResult": ("oci.artifact", "PullResult"),
    "list_repository": ("oci.api", "list_repository"),
    "verify_oci": ("verify.oci", "verify_oci"),
    "attest_pack": ("signing.attest", "attest_pack"),
    "SignAs": ("signing.attest", "SignAs"),
    "validate_pack": ("evidence.packing", "validate_pack"),
    "AttestResult": ("signing.attest", "AttestResult"),
    "ManifestInline": ("claims.slsa", "ManifestInline"),
    "ValidateResult": ("signing.attest", "ValidateResult"),
    "verify": ("verify.api", "verify"),
    "Rebuild": ("verify.api", "Rebuild"),
    "TensorCheck": ("verify.api", "TensorCheck"),
    "verify_oms_model": ("verify.api", "verify_oms_model"),
    "gate": ("verify.api", "gate"),
    "check_pack": ("verify.api", "check_pack"),
    "verify_pack": ("verify.api", "verify_pack"),
    "check_rebuild": ("verify.api", "check_rebuild"),
    "Verdict": ("verify.result", "Verdict"),
    "Check": ("policy.rules", "Check"),
    "reconstruct": ("verify.reconstruct", "reconstruct"),
    "Reconstruction": ("verify.reconstruct", "Reconstruction"),
    "verify_any_bundle": ("evidence.conformance", "verify_any_bundle"),
    "BundleVerified": ("evidence.conformance", "BundleVerified"),
    "load_policy": ("policy.model", "load_policy"),
    "policy_schema": ("policy.model", "policy_schema"),
    "Policy": ("policy.model", "Policy"),
    "load_verified": ("runtime.loader", "load_verified"),
    "load_model": ("runtime.model", "load_model"),
    "LoadReport": ("runtime.model", "LoadReport"),
    "Mode": ("runtime.modes", "Mode"),
    "set_thread_budget": ("core.threads", "set_thread_budget"),
    "Device": ("core.device", "Device"),
    "Runtime": ("claims.validation", "Runtime"),
    "serving_runtime": ("runtime.modes", "serving_runtime"),
    "generate": ("runtime.serve", "generate"),
    "Serving": ("runtime.serving", "Serving"),
    "embed": ("runtime.serve", "embed"),
    "RunResult": ("runtime.serve", "RunResult"),
    "audit": ("audit.api", "audit"),
    "inventory": ("audit.api", "inventory"),
    "watch_log": ("audit.api", "watch_log"),
    "AuditReport": ("audit.custody", "AuditReport"),
    "WatchResult": ("transparency.monitor", "WatchResult"),
    "FollowResult": ("transparency.follow", "FollowResult"),
    "render_report_html": ("audit.report", "render_report_html"),
    "write_report_html": ("audit.report", "write_report_html"),
    "init_instance": ("instance.api", "init_instance"),
    "load_instance": ("instance.api", "load_instance"),
    "instance_server": ("instance.api", "instance_server"),
    "dev_token": ("instance.api", "dev_token"),
    "InstanceState": ("instance.state", "InstanceState"),
    "DEV_RISK": ("instance.state", "DEV_RISK"),
    "InstanceServer": ("instance.http", "InstanceServer"),
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (then cached in this module)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'uc_attest' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["__version__", *_errors.__all__, *_LAZY]  # noqa: PLE0604 - their types: __init__.pyi
