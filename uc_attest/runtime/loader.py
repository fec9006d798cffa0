"""Load a verified pack: tensors made of exactly the bytes that were hashed and matched, or nothing.

A loader needs a trust anchor — a policy, a bundle with identity and issuer, or a separately kept
(validated) manifest — never the pack's own manifest alone, which whoever can write the pack controls.
Verification (signature, log, files) runs first; then every tensor is reconstructed, hashed as it is
read and matched against the trusted manifest before anything is returned: no gap between check and use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import Finding, MalformedPack, MalformedSafetensors, VerificationFailed
from ..pack.reader import Pack
from ..signing.trust import Trust
from ..verify.anchor import Anchor, require_anchor
from ..verify.api import verify


def load_verified(
    pack_dir: Path, anchor: Anchor | None = None, trust: Trust | None = None, *, online: bool = True
) -> dict[str, Any]:
    """Verify, then reconstruct every tensor into a torch state dict; raises VerificationFailed (nothing
    returned) on any finding, UsageError without a trust anchor."""
    import torch

    from ..core.stfile import torch_dtype

    pack_dir = Path(pack_dir)
    verdict = verify(pack_dir, require_anchor(anchor), trust, online=online, check_tensors=False)
    findings = verdict.failures()
    if findings:
        raise VerificationFailed(findings)
    trusted = verdict.manifest
    if trusted is None:
        raise VerificationFailed([Finding(str(pack_dir), "no manifest to load against")])
    if verdict.root is not None and trusted.root != verdict.root:
        raise VerificationFailed(
            [Finding("manifest root", "differs from the verified one", str(verdict.root), str(trusted.root))]
        )
    state: dict[str, Any] = {}
    with Pack(pack_dir) as pack:
        for e in sorted(trusted.tensors, key=lambda e: e.name):
            if e.name not in pack.tensors:
                findings.append(Finding(e.name, "missing from pack", str(e.digest)))
                continue
            buf = bytearray()
            h = hashlib.sha256()
            try:
                for block in pack.iter_bytes(e.name):
                    h.update(block)
                    buf += block
            except (MalformedPack, MalformedSafetensors) as exc:
                findings.append(Finding(e.name, f"cannot reconstruct: {exc.message}"))
                continue
            if h.hexdigest() != e.digest.hex:
                findings.append(
                    Finding(e.name, "reconstructed digest differs", str(e.digest), f"sha256:{h.hexdigest()}")
                )
                continue
            dt = torch_dtype(e.dtype)
            if dt is None:
                findings.append(Finding(e.name, f"dtype {e.dtype} cannot be loaded into torch"))
                continue
            state[e.name] = torch.frombuffer(buf, dtype=dt).reshape(e.shape) if buf else torch.empty(e.shape, dtype=dt)
        extra = sorted(set(pack.tensors) - {e.name for e in trusted.tensors})
        findings += [Finding(n, "not in manifest (added tensor)") for n in extra]
    if findings:
        raise VerificationFailed(findings)
    return state
