"""``reconstruct``: the verified reconstruction of a pack, written as a standard safetensors model — or nothing.

The trust anchor (a policy, a bundle with its signer, or a separately kept manifest) is verified first and
gives the manifest the output must match; then every tensor and file is written from the bytes that were
hashed and matched (``pack.export``). Without an anchor the pack's own manifest is used and the result says
so: whoever can write the pack controls that manifest, so only self-consistency was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.digest import Digest
from ..errors import Finding, VerificationFailed
from ..pack.export import export_reconstruction
from .api import prepare
from .result import Verdict

SELF_CONSISTENCY_ONLY = (
    "integrity only: checked against the pack's own manifest, no signer checked "
    "(anchor it with --policy, --bundle/--identity, or --manifest KEPT)"
)


@dataclass(frozen=True)
class Reconstruction:
    """A written reconstruction: where, which shards, the manifest root it matches, and against what."""

    out: Path
    shards: list[str]
    root: Digest
    anchored: bool
    verdict: Verdict

    @property
    def note(self) -> str | None:
        return None if self.anchored else SELF_CONSISTENCY_ONLY


def reconstruct(
    pack_dir: Path,
    out_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    validations: Sequence[Path] | None = None,
    manifest: Path | None = None,
    online: bool = True,
    force: bool = False,
) -> Reconstruction:
    """Verify the anchor, then write every matching tensor and file to ``out_dir`` (atomically).
    Raises :class:`VerificationFailed` naming every tensor or file that differs; nothing is written then."""
    pack_dir = Path(pack_dir)
    prep = prepare(
        pack_dir,
        policy=policy,
        bundle=bundle,
        validations=validations,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        manifest=manifest,
        online=online,
    )
    early = prep.verdict()  # signature, identity, claims, validation: refused before the bulk is read
    if prep.facts.evidence_error or prep.facts.claim_error or prep.expected is None:
        raise VerificationFailed(early.failures() or [Finding(str(pack_dir), prep.facts.pack_error or "no manifest")])
    expected = prep.expected[0]
    shards = export_reconstruction(
        prep.facts.pack, expected, Path(out_dir), force=force, finally_=lambda: prep.verdict().failures()
    )
    return Reconstruction(Path(out_dir), shards, expected.root, prep.signed or manifest is not None, prep.verdict())
