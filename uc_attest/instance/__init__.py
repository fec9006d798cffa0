"""The embedded Sigstore-compatible instance: CA with CT, Rekor-v1-style log, dev OIDC issuer.

DEV INSTANCE: its OIDC issuer can mint any identity. It is for offline demos, tests and
air-gapped evaluation; production uses public-good or a private Sigstore deployment.
"""

from .state import DEV_LABEL, InstanceState, init_instance

__all__ = ["DEV_LABEL", "InstanceState", "init_instance"]
