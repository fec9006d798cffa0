"""``reconstruct``: the verified reconstruction of a pack, written as a standard safetensors model — or nothing.

The trust anchor (a policy, a bundle with its signer, or a separately kept manifest) is verified first and
gives the manifest the output must match; then every tensor and file is written from the bytes that were
hashed and matched (``pack.export``). Without an anchor the pack's own manifest is used and the result says
so: whoever can write the pack controls that manifest, so only self-consistency was checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..pack.export import export_reconstruction
from .anchor import PackAnchor, pack_anchor
from .api import prepare
from .result import Verdict

SELF_CONSISTENCY_ONLY = (
    "integrity only: checked against the pack's own manifest, no signer checked "
    "(anchor it with a policy, a signer, or a kept manifest)"
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

    def to_dict(self) -> dict[str, Any]:
        """What ``reconstruct --json`` prints."""
        return {
            "ok": True,
            "output": str(self.out),
            "shards": self.shards,
            "root": str(self.root),
            "anchored": self.anchored,
            "note": self.note,
        }


def reconstruct(
    pack_dir: Path,
    out_dir: Path,
    anchor: PackAnchor,
    *,
    online: bool = True,
    force: bool = False,
) -> Reconstruction:
    """Verify the anchor, then write every matching tensor and file to ``out_dir`` (atomically).
    Raises :class:`VerificationFailed` naming every tensor or file that differs; nothing is written then."""
    anchor = pack_anchor(anchor)
    prep = prepare(Path(pack_dir), anchor, online=online)
    expected = prep.refuse_early()  # signature, identity, claims, validation: refused before the bulk is read
    shards = export_reconstruction(
        prep.facts.pack, expected.manifest, Path(out_dir), force=force, finally_=lambda: prep.verdict().failures()
    )
    return Reconstruction(Path(out_dir), shards, expected.manifest.root, anchor.anchored, prep.verdict())
