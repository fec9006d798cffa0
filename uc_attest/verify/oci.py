"""``verify oci://HOST/REPO@sha256:…``: a pack in a registry, pulled (every blob checked) with its referrer
bundles into a temporary directory, verified there, and removed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..claims.validation import Runtime
from ..core.ruleid import RuleId
from ..oci import Reference, pull_pack
from ..policy.rules import Check
from .anchor import Anchor
from .api import verify
from .result import Verdict


def verify_oci(
    reference: str,
    anchor: Anchor,
    *,
    plain_http: bool = False,
    online: bool = True,
    runtime: Runtime | None = None,
) -> Verdict:
    """The verdict of the pack at ``reference``; its first check names the digest that was verified."""
    with tempfile.TemporaryDirectory(prefix="uc-oci-") as tmp:
        pulled = pull_pack(Reference.parse(reference), Path(tmp) / "pack", plain_http=plain_http)
        v = verify(Path(tmp) / "pack", anchor, online=online, runtime=runtime)
        detail = (
            f"{reference} -> {pulled.digest}: {pulled.files} layers, {len(pulled.bundles)} referrer bundle(s), "
            "every blob checked"
        )
        v.checks.insert(0, Check.of(RuleId.OCI_PULL, True, detail))
        v.pack = Path(f"{reference.split('@')[0]}@{pulled.digest}")
        return v
