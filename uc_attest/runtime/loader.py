"""Load a verified pack: tensors made of exactly the bytes that were hashed and matched, or nothing.

A loader needs a trust anchor — a policy, a bundle with identity and issuer, or a separately kept
(validated) manifest — never the pack's own manifest alone, which whoever can write the pack controls.
Verification (signature, log, files) runs first; then every tensor comes from the verified stream
(``pack/verified.py``): reconstructed, hashed as it is read into its buffer and matched against the trusted
manifest before anything is returned: no gap between check and use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Finding, VerificationFailed
from ..manifest import Manifest, TensorEntry
from ..pack.reader import Pack
from ..pack.verified import Block, verified_tensors
from ..verify.anchor import ServingAnchor, serving_anchor
from ..verify.api import prepare


def load_verified(pack_dir: Path, anchor: ServingAnchor | None = None, *, online: bool = True) -> dict[str, Any]:
    """Verify, then reconstruct every tensor into a torch state dict; raises VerificationFailed (nothing
    returned) on any finding, UsageError without a trust anchor (the pack itself is none)."""
    pack_dir = Path(pack_dir)
    verdict = prepare(pack_dir, serving_anchor(anchor), online=online).verdict()
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
    with Pack(pack_dir) as pack:
        state, findings = _state_dict(pack, trusted)
    if findings:
        raise VerificationFailed(findings)
    return state


def _state_dict(pack: Pack, trusted: Manifest) -> tuple[dict[str, Any], list[Finding]]:
    """Each verified tensor as a torch tensor over the very bytes that were hashed (by name), and the findings."""
    import torch

    from ..core.stfile import torch_dtype

    kept: dict[str, bytearray] = {}

    def keep(e: TensorEntry) -> Callable[[Block], object]:
        kept[e.name] = bytearray()
        return kept[e.name].extend

    state: dict[str, Any] = {}
    findings: list[Finding] = []
    for o in verified_tensors(pack, trusted, keep):
        if isinstance(o, Finding):
            findings.append(o)
            kept.pop(o.subject, None)
            continue
        e, buf = o.entry, kept.pop(o.entry.name)
        dt = torch_dtype(e.dtype)
        if dt is None:
            findings.append(Finding(e.name, f"dtype {e.dtype} cannot be loaded into torch"))
            continue
        state[e.name] = torch.frombuffer(buf, dtype=dt).reshape(e.shape) if buf else torch.empty(e.shape, dtype=dt)
    return dict(sorted(state.items())), findings
